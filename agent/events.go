package agent

import (
	"encoding/json"
	"sync"
	"time"
)

// Event is one server-sent event.
type Event struct {
	ID   uint64
	Type string
	Data json.RawMessage
}

// Hub fans events out to subscribers and keeps a short history so a client
// that reconnects with Last-Event-ID misses nothing recent.
type Hub struct {
	mu      sync.Mutex
	next    uint64
	history []Event // ring of the newest events, oldest first
	subs    map[chan Event]struct{}
	keep    int
}

// NewHub keeps the newest keep events for replay.
// Ids start from the clock, not 1, so a client resuming with an id from
// before a restart is not mistaken for one that has seen the new events.
func NewHub(keep int) *Hub {
	return &Hub{next: uint64(time.Now().UnixMicro()), subs: map[chan Event]struct{}{}, keep: keep}
}

// Publish marshals data and sends it to every subscriber. A subscriber whose
// buffer is full is dropped (its channel closed): a stuck client must never
// stall the daemon; it can reconnect with Last-Event-ID.
func (h *Hub) Publish(typ string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := Event{ID: h.next, Type: typ, Data: raw}
	h.next++
	h.history = append(h.history, ev)
	if len(h.history) > h.keep {
		h.history = h.history[len(h.history)-h.keep:]
	}
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Subscribe returns a channel of events after lastID (0 = only new ones) and
// a function that ends the subscription.
func (h *Hub) Subscribe(lastID uint64) (<-chan Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan Event, 64+h.keep)
	if lastID > 0 {
		for _, ev := range h.history {
			if ev.ID > lastID {
				ch <- ev
			}
		}
	}
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}
