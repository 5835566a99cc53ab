package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/simproof/simproof/modem"
)

// Backend is what the registry needs of a modem backend (AT, ModemManager):
// a stream of events and a way to get the modem an event names.
type Backend interface {
	Events() <-chan modem.Event
	Get(id string) (modem.Modem, bool)
}

// Registry is the daemon's view of every modem known now, whatever its
// backend, with the scheduler's busy flag laid over it.
type Registry struct {
	hub *Hub

	mu     sync.Mutex
	modems map[string]modem.Modem
	busy   map[string]bool
	watch  map[string]map[*func()]struct{} // OnRemove callbacks by modem id
}

// NewRegistry publishes modem events on hub.
func NewRegistry(hub *Hub) *Registry {
	return &Registry{hub: hub, modems: map[string]modem.Modem{}, busy: map[string]bool{}}
}

// Follow copies b's events into the registry until ctx ends or b's event
// channel closes.
func (r *Registry) Follow(ctx context.Context, b Backend) {
	ch := b.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			switch ev.Kind {
			case modem.Removed:
				r.Remove(ev.Info.ID)
			default:
				if m, ok := b.Get(ev.Info.ID); ok {
					r.Put(m)
				}
			}
		}
	}
}

// Put adds or refreshes a modem.
func (r *Registry) Put(m modem.Modem) {
	info := m.Info()
	r.mu.Lock()
	_, existed := r.modems[info.ID]
	r.modems[info.ID] = m
	info.Busy = r.busy[info.ID]
	r.mu.Unlock()
	kind := modem.Added
	if existed {
		kind = modem.Changed
	}
	r.hub.Publish(string(kind), info)
}

// Remove forgets a modem.
func (r *Registry) Remove(id string) {
	r.mu.Lock()
	m, ok := r.modems[id]
	delete(r.modems, id)
	for f := range r.watch[id] {
		go (*f)()
	}
	delete(r.watch, id)
	r.mu.Unlock()
	if ok {
		r.hub.Publish(string(modem.Removed), m.Info())
	}
}

// SetBusy marks whether a check runs on the modem.
func (r *Registry) SetBusy(id string, busy bool) {
	r.mu.Lock()
	r.busy[id] = busy
	m, ok := r.modems[id]
	r.mu.Unlock()
	if ok {
		info := m.Info()
		info.Busy = busy
		r.hub.Publish(string(modem.Changed), info)
	}
}

// List returns every modem, sorted by id.
func (r *Registry) List() []modem.Info {
	r.mu.Lock()
	ms := make([]modem.Modem, 0, len(r.modems))
	for _, m := range r.modems {
		ms = append(ms, m)
	}
	busy := make(map[string]bool, len(r.busy))
	for k, v := range r.busy {
		busy[k] = v
	}
	r.mu.Unlock()
	out := make([]modem.Info, 0, len(ms))
	for _, m := range ms {
		info := m.Info()
		info.Busy = busy[info.ID]
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Lookup resolves a selector: an id, "imei:…" or "iccid:…".
func (r *Registry) Lookup(sel string) (modem.Modem, modem.Info, error) {
	field, value := "id", sel
	if k, v, ok := strings.Cut(sel, ":"); ok && (k == "imei" || k == "iccid") {
		field, value = k, v
	}
	if value == "" {
		return nil, modem.Info{}, fmt.Errorf("%w: empty selector", modem.ErrNotFound)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if field == "id" {
		if m, ok := r.modems[value]; ok {
			info := m.Info()
			info.Busy = r.busy[info.ID]
			return m, info, nil
		}
	}
	for _, m := range r.modems {
		info := m.Info()
		if (field == "imei" && info.IMEI == value) || (field == "iccid" && info.SIM.ICCID == value) {
			info.Busy = r.busy[info.ID]
			return m, info, nil
		}
	}
	return nil, modem.Info{}, fmt.Errorf("%w: %q", modem.ErrNotFound, sel)
}

// OnRemove calls fn (once, on its own goroutine) when the modem id is
// removed; the returned function cancels the watch.
func (r *Registry) OnRemove(id string, fn func()) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watch == nil {
		r.watch = map[string]map[*func()]struct{}{}
	}
	if _, ok := r.modems[id]; !ok {
		go fn()
		return func() {}
	}
	if r.watch[id] == nil {
		r.watch[id] = map[*func()]struct{}{}
	}
	key := &fn
	r.watch[id][key] = struct{}{}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.watch[id], key)
	}
}
