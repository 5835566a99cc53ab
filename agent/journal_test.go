package agent

import (
	"fmt"
	"sync"
	"testing"
	"time"
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
