package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Journal is the durable record of every check the daemon accepted
// (go.etcd.io/bbolt, fsync on every commit): a check is written before any
// provider call, and each change after, so a restart finds every check it
// ever accepted. It stores only redacted checks.
type Journal struct {
	db *bolt.DB

	// Writes go through one goroutine that commits, in one transaction and
	// one fsync, every write queued while the previous commit was syncing:
	// a lone write waits for nothing, concurrent checks on many modems
	// share fsyncs instead of queueing behind each other's (bbolt's Batch
	// waits a timer to gather writers; without one it gathers none).
	writes chan writeReq
	mu     sync.RWMutex // guards closed against Close
	closed bool
	done   chan struct{}
}

type writeReq struct {
	fn  func(*bolt.Tx) error
	err chan error
}

// maxGroup bounds one group commit.
const maxGroup = 256

var (
	bucketChecks = []byte("checks") // check id → JSON
	bucketIdem   = []byte("idempotency")
)

// ErrJournal wraps a failure to record: the caller must not spend money on a
// check it could not record.
var ErrJournal = errors.New("journal")

// OpenJournal opens (creating) the journal in dir.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: state dir: %v", ErrJournal, err)
	}
	path := filepath.Join(dir, "journal.db")
	// The timeout turns a second daemon on the same state dir into a clear
	// error instead of a hang on bbolt's file lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrJournal, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketChecks, bucketIdem} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: init %s: %v", ErrJournal, path, err)
	}
	j := &Journal{db: db, writes: make(chan writeReq, maxGroup), done: make(chan struct{})}
	go j.writer()
	return j, nil
}

// Close stops the writer (after the writes already queued) and closes the
// database.
func (j *Journal) Close() error {
	j.mu.Lock()
	if !j.closed {
		j.closed = true
		close(j.writes)
	}
	j.mu.Unlock()
	<-j.done
	return j.db.Close()
}

var errClosed = errors.New("closed")

// write runs fn in a write transaction, grouped with whatever else is queued.
func (j *Journal) write(fn func(*bolt.Tx) error) error {
	req := writeReq{fn: fn, err: make(chan error, 1)}
	j.mu.RLock()
	if j.closed {
		j.mu.RUnlock()
		return errClosed
	}
	j.writes <- req
	j.mu.RUnlock()
	return <-req.err
}

func (j *Journal) writer() {
	defer close(j.done)
	for first := range j.writes {
		group := []writeReq{first}
	gather:
		for len(group) < maxGroup {
			select {
			case r, ok := <-j.writes:
				if !ok {
					break gather
				}
				group = append(group, r)
			default:
				break gather
			}
		}
		err := j.db.Update(func(tx *bolt.Tx) error {
			for _, r := range group {
				if err := r.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && len(group) > 1 {
			// One member failed and took the group down: commit each alone,
			// so only the failing one sees its error.
			for _, r := range group {
				r.err <- j.db.Update(r.fn)
			}
			continue
		}
		for _, r := range group {
			r.err <- err
		}
	}
}

// Put writes the redacted form of c.
func (j *Journal) Put(c *Check) error {
	raw, err := json.Marshal(c.forJournal())
	if err != nil {
		return fmt.Errorf("%w: encode %s: %v", ErrJournal, c.ID, err)
	}
	err = j.write(func(tx *bolt.Tx) error {
		if c.IdempotencyKey != "" {
			if err := tx.Bucket(bucketIdem).Put([]byte(c.IdempotencyKey), []byte(c.ID)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketChecks).Put([]byte(c.ID), raw)
	})
	if err != nil {
		return fmt.Errorf("%w: write %s: %v", ErrJournal, c.ID, err)
	}
	return nil
}

// Create writes a new check unless its idempotency key is already taken, in
// which case it returns the existing check and false. One transaction, so
// two concurrent requests with one key never both create.
func (j *Journal) Create(c *Check) (*Check, bool, error) {
	raw, err := json.Marshal(c.forJournal())
	if err != nil {
		return nil, false, fmt.Errorf("%w: encode %s: %v", ErrJournal, c.ID, err)
	}
	var existing *Check
	err = j.write(func(tx *bolt.Tx) error {
		existing = nil // a failed group runs this again alone
		if c.IdempotencyKey != "" {
			idem := tx.Bucket(bucketIdem)
			if id := idem.Get([]byte(c.IdempotencyKey)); id != nil {
				if v := tx.Bucket(bucketChecks).Get(id); v != nil {
					existing = &Check{}
					return json.Unmarshal(v, existing)
				}
			}
			if err := idem.Put([]byte(c.IdempotencyKey), []byte(c.ID)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketChecks).Put([]byte(c.ID), raw)
	})
	if err != nil {
		return nil, false, fmt.Errorf("%w: create %s: %v", ErrJournal, c.ID, err)
	}
	if existing != nil {
		return existing, false, nil
	}
	return c, true, nil
}

// Get reads one check.
func (j *Journal) Get(id string) (*Check, error) {
	var c *Check
	err := j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketChecks).Get([]byte(id))
		if v == nil {
			return nil
		}
		c = &Check{}
		return json.Unmarshal(v, c)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrJournal, id, err)
	}
	return c, nil
}

// ByIdempotencyKey returns the check an idempotency key made, or nil.
func (j *Journal) ByIdempotencyKey(key string) (*Check, error) {
	var c *Check
	err := j.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketIdem).Get([]byte(key))
		if id == nil {
			return nil
		}
		v := tx.Bucket(bucketChecks).Get(id)
		if v == nil {
			return nil
		}
		c = &Check{}
		return json.Unmarshal(v, c)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: idempotency key: %v", ErrJournal, err)
	}
	return c, nil
}

// List returns checks newest first, filtered, at most limit.
func (j *Journal) List(filter func(*Check) bool, limit int) ([]*Check, error) {
	var out []*Check
	err := j.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketChecks).Cursor()
		for k, v := cur.Last(); k != nil && len(out) < limit; k, v = cur.Prev() {
			c := &Check{}
			if err := json.Unmarshal(v, c); err != nil {
				continue // a record from an incompatible version: skip, keep serving
			}
			if filter == nil || filter(c) {
				out = append(out, c)
			}
		}
		return nil
	})
	return out, err
}

// Unfinished returns every check that was queued or running, oldest first:
// what a restart must resume or mark interrupted.
func (j *Journal) Unfinished() ([]*Check, error) {
	var out []*Check
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketChecks).ForEach(func(k, v []byte) error {
			c := &Check{}
			if err := json.Unmarshal(v, c); err == nil && !c.Final() {
				out = append(out, c)
			}
			return nil
		})
	})
	return out, err
}

// Prune deletes finished checks that ended before cutoff, with their
// idempotency keys.
func (j *Journal) Prune(cutoff time.Time) (int, error) {
	n := 0
	err := j.db.Update(func(tx *bolt.Tx) error {
		checks, idem := tx.Bucket(bucketChecks), tx.Bucket(bucketIdem)
		var dead [][]byte
		var keys [][]byte
		err := checks.ForEach(func(k, v []byte) error {
			c := &Check{}
			if json.Unmarshal(v, c) != nil {
				return nil
			}
			if c.Final() && c.FinishedAt != nil && c.FinishedAt.Before(cutoff) {
				dead = append(dead, bytes.Clone(k))
				if c.IdempotencyKey != "" {
					keys = append(keys, []byte(c.IdempotencyKey))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := checks.Delete(k); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := idem.Delete(k); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	return n, err
}
