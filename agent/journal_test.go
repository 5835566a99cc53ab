package agent

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Concurrent creates with one idempotency key make one check, whatever the
// batching; everything written is read back after a reopen.
func TestJournalConcurrentAndDurable(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := map[string]bool{}
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now()
			c := &Check{ID: newCheckID(now), Status: StatusQueued, CreatedAt: now, IdempotencyKey: "same-key"}
			got, isNew, err := j.Create(c)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			created[got.ID] = created[got.ID] || isNew
			mu.Unlock()
			other := &Check{ID: newCheckID(now) + fmt.Sprint(i), Status: StatusRunning, CreatedAt: now}
			if err := j.Put(other); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(created) != 1 {
		t.Fatalf("one idempotency key made %d checks", len(created))
	}
	j.Close()
	j, err = OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	all, err := j.List(nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 33 {
		t.Errorf("%d checks after reopen, want 33", len(all))
	}
	unfinished, _ := j.Unfinished()
	if len(unfinished) != 33 {
		t.Errorf("%d unfinished, want 33", len(unfinished))
	}
}

// BenchmarkJournalConcurrentWrites: 32 writers (a 32-modem array's checks)
// each recording a check, with the journal's group commit against one
// bbolt Update (one fsync) per write. ns/op is per write.
func BenchmarkJournalConcurrentWrites(b *testing.B) {
	for _, mode := range []string{"group-commit", "update-per-write"} {
		b.Run(mode, func(b *testing.B) {
			j, err := OpenJournal(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			now := time.Now()
			c := &Check{Status: StatusRunning, CreatedAt: now, Trace: nil}
			raw, _ := json.Marshal(c)
			b.SetParallelism(16) // 2 CPUs × 16 = 32 writers
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := []byte(fmt.Sprintf("chk_%d", n.Add(1)))
					put := func(tx *bolt.Tx) error { return tx.Bucket(bucketChecks).Put(id, raw) }
					var err error
					if mode == "group-commit" {
						err = j.write(put)
					} else {
						err = j.db.Update(put)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// Retention prunes finished checks older than the cutoff with their
// idempotency keys, and never an unfinished one.
func TestJournalPrune(t *testing.T) {
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	now := time.Now()
	old, recent := now.Add(-200*time.Hour), now.Add(-time.Hour)
	checks := []*Check{
		{ID: "chk_old", Status: StatusCompleted, FinishedAt: &old, IdempotencyKey: "k-old"},
		{ID: "chk_recent", Status: StatusFailed, FinishedAt: &recent},
		{ID: "chk_running", Status: StatusRunning, CreatedAt: old},
	}
	for _, c := range checks {
		if err := j.Put(c); err != nil {
			t.Fatal(err)
		}
	}
	n, err := j.Prune(now.Add(-168 * time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want 1", n, err)
	}
	for id, want := range map[string]bool{"chk_old": false, "chk_recent": true, "chk_running": true} {
		c, _ := j.Get(id)
		if (c != nil) != want {
			t.Errorf("%s present = %v, want %v", id, c != nil, want)
		}
	}
	// The pruned check's idempotency key is free again.
	c, created, err := j.Create(&Check{ID: "chk_new", Status: StatusQueued, IdempotencyKey: "k-old"})
	if err != nil || !created || c.ID != "chk_new" {
		t.Errorf("key after prune: %v %v %v", c, created, err)
	}
}
