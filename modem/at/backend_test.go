package at_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/at"
	"github.com/simproof/simproof/modem/sim"
)

// rig runs simulated modems on real ptys and an AT backend on their links,
// opened with go.bug.st/serial like real ports.
type rig struct {
	t      *testing.T
	b      *at.Backend
	sims   []*sim.Modem
	links  []string
	events chan modem.Event
}

func newRig(t *testing.T, n int, setup func(i int, m *sim.Modem)) *rig {
	t.Helper()
	return newRigOpts(t, n, setup, nil)
}

func newRigOpts(t *testing.T, n int, setup func(i int, m *sim.Modem), opts func(*at.BackendOptions)) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, events: make(chan modem.Event, 256)}
	var ports []at.PortConfig
	for i := 0; i < n; i++ {
		m := sim.New(sim.DefaultIdentity(i))
		if setup != nil {
			setup(i, m)
		}
		link := filepath.Join(dir, fmt.Sprintf("ttySIM%d", i))
		if err := m.ServePTY(link); err != nil {
			t.Fatalf("serve pty: %v", err)
		}
		t.Cleanup(func() { m.Close() })
		r.sims = append(r.sims, m)
		r.links = append(r.links, link)
		ports = append(ports, at.PortConfig{Device: link, Simulated: true, NetDevice: fmt.Sprintf("wwan%d", i)})
	}
	bo := at.BackendOptions{Ports: ports, CommandTimeout: time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if opts != nil {
		opts(&bo)
	}
	r.b = at.NewBackend(bo)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.b.Run(ctx); close(done) }()
	go func() {
		for ev := range r.b.Events() {
			r.events <- ev
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("backend did not stop")
		}
	})
	return r
}

// wait returns the first event of kind for id ("" = any), within 15 s.
func (r *rig) wait(kind modem.EventKind, id string) modem.Info {
	r.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev.Kind == kind && (id == "" || ev.Info.ID == id) {
				return ev.Info
			}
		case <-deadline:
			r.t.Fatalf("no %s event for %q", kind, id)
		}
	}
}

func (r *rig) modem(id string) modem.Modem {
	r.t.Helper()
	m, ok := r.b.Get(id)
	if !ok {
		r.t.Fatalf("modem %s not served", id)
	}
	return m
}

func TestIdentityEqualsSimulator(t *testing.T) {
	r := newRig(t, 2, func(i int, m *sim.Modem) {
		if i == 1 {
			// Only EF_ICCID through +CRSM: the backend's last fallback.
			m.Disable("+CCID")
		}
	})
	seen := map[string]modem.Info{}
	for len(seen) < 2 {
		info := r.wait(modem.Added, "")
		seen[info.ID] = info
	}
	for i, s := range r.sims {
		id := s.Identity()
		info, ok := seen[id.IMEI]
		if !ok {
			t.Fatalf("modem %d (IMEI %s) not listed; have %v", i, id.IMEI, seen)
		}
		want := map[string][2]string{
			"id":            {info.ID, id.IMEI},
			"imei":          {info.IMEI, id.IMEI},
			"iccid":         {info.SIM.ICCID, id.ICCID},
			"imsi":          {info.SIM.IMSI, id.IMSI},
			"manufacturer":  {info.Manufacturer, id.Manufacturer},
			"model":         {info.Model, id.Model},
			"revision":      {info.Revision, id.Revision},
			"operator_id":   {info.SIM.OperatorID, id.OperatorID},
			"operator_name": {info.SIM.OperatorName, id.SPN},
			"network":       {info.Network.OperatorName, id.OperatorName},
			"network_id":    {info.Network.OperatorID, id.OperatorID},
			"own_number":    {fmt.Sprint(info.SIM.OwnNumbers), fmt.Sprint([]string{id.MSISDN})},
			"registration":  {info.Registration, "home"},
			"tech":          {info.AccessTechnology, "lte"},
			"state":         {info.State, "registered"},
			"backend":       {info.Backend, "at"},
		}
		for k, v := range want {
			if v[0] != v[1] {
				t.Errorf("modem %d %s = %q, want %q", i, k, v[0], v[1])
			}
		}
		if info.SignalQuality == nil || *info.SignalQuality != id.RSSI*100/31 {
			t.Errorf("modem %d signal %v, want %d", i, info.SignalQuality, id.RSSI*100/31)
		}
		if !info.Simulated {
			t.Errorf("modem %d not marked simulated", i)
		}
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name       string
		faults     sim.Faults
		state      string
		reason     string
		connectErr error
	}{
		{"no sim", sim.Faults{NoSIM: true}, "failed", "sim-missing", modem.ErrSIMMissing},
		{"pin required", sim.Faults{PINRequired: true}, "locked", "sim-pin", modem.ErrSIMLocked},
		{"puk required", sim.Faults{PUKRequired: true}, "locked", "sim-puk", modem.ErrSIMLocked},
		{"not registered", sim.Faults{NotRegistered: true}, "searching", "", modem.ErrNotRegistered},
		{"denied", sim.Faults{Denied: true}, "enabled", "registration-denied", modem.ErrNotRegistered},
		{"slow answers", sim.Faults{Delay: 30 * time.Millisecond}, "registered", "", nil},
		{"garbage", sim.Faults{GarbageEvery: 2}, "registered", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, 1, func(_ int, m *sim.Modem) { m.SetFaults(tt.faults) })
			info := r.wait(modem.Added, "")
			if info.State != tt.state || info.StateReason != tt.reason {
				t.Fatalf("state %q (%q), want %q (%q)", info.State, info.StateReason, tt.state, tt.reason)
			}
			if info.IMEI != r.sims[0].Identity().IMEI {
				t.Errorf("IMEI %q not read under fault", info.IMEI)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := r.modem(info.ID).Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"})
			if tt.connectErr == nil {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.connectErr) {
				t.Fatalf("connect error %v, want %v", err, tt.connectErr)
			}
			var se *modem.StateError
			if !errors.As(err, &se) || se.Reason == "" {
				t.Errorf("connect error %v carries no reason", err)
			}
		})
	}
}

// A modem that answers nothing is never listed, and the backend says why.
func TestSilentModem(t *testing.T) {
	r := newRig(t, 1, func(_ int, m *sim.Modem) { m.SetFaults(sim.Faults{Silent: true}) })
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if st, msg := r.b.Status(); st == "degraded" {
			if !errors.Is(errors.New(msg), at.ErrTimeout) && !contains(msg, "timed out") {
				t.Errorf("status %q does not say the modem timed out", msg)
			}
			if len(r.events) != 0 {
				t.Errorf("a silent modem was listed")
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("backend never reported the silent port")
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestUnplugReplug(t *testing.T) {
	r := newRig(t, 1, nil)
	info := r.wait(modem.Added, "")
	m := r.modem(info.ID)

	r.sims[0].Unplug()
	gone := r.wait(modem.Removed, info.ID)
	if gone.ID != info.ID {
		t.Fatalf("removed %s", gone.ID)
	}
	if _, ok := r.b.Get(info.ID); ok {
		t.Error("unplugged modem still served")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.Connect(ctx, modem.ConnectParams{APN: "internet"}); !errors.Is(err, modem.ErrGone) {
		t.Errorf("connect on an unplugged modem: %v, want modem_gone", err)
	}

	if err := r.sims[0].Plug(); err != nil {
		t.Fatal(err)
	}
	back := r.wait(modem.Added, info.ID)
	if back.SIM.ICCID != info.SIM.ICCID {
		t.Errorf("replugged modem ICCID %q, want %q", back.SIM.ICCID, info.SIM.ICCID)
	}
}

func TestConnectDisconnect(t *testing.T) {
	r := newRig(t, 1, nil)
	info := r.wait(modem.Added, "")
	m := r.modem(info.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"})
	if err != nil {
		t.Fatal(err)
	}
	b := sim.DefaultBearer(0)
	if !d.Connected || d.Interface != "wwan0" || d.IPv4 == nil || d.IPv4.Address != b.IPv4.Addr().String() ||
		d.IPv4.Prefix != b.IPv4.Bits() || d.IPv4.Gateway != b.Gateway4.String() || len(d.IPv4.DNS) != 2 {
		t.Fatalf("data %+v ipv4 %+v, want the simulator's bearer %+v", d, d.IPv4, b)
	}
	if ctxs, ok := r.sims[0].Context(1); !ok || !ctxs.Active || ctxs.APN != "internet" {
		t.Errorf("simulator context %+v", ctxs)
	}
	if got := m.Info(); got.State != "connected" || !got.Data.Connected {
		t.Errorf("after connect: state %s data %+v", got.State, got.Data)
	}
	// The network drops the session: the modem object follows.
	if err := r.sims[0].InjectNWDeact(1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.Info().Data.Connected && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if m.Info().Data.Connected {
		t.Fatal("network deactivation not noticed")
	}
	if _, err := m.Connect(ctx, modem.ConnectParams{APN: "internet"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if ctxs, _ := r.sims[0].Context(1); ctxs.Active {
		t.Error("context still active after disconnect")
	}
	if m.Info().Data.Connected {
		t.Error("still connected after disconnect")
	}
}

func TestRejectsQuotesInAPN(t *testing.T) {
	r := newRig(t, 1, nil)
	info := r.wait(modem.Added, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.modem(info.ID).Connect(ctx, modem.ConnectParams{APN: "x\"\r\nAT+CFUN=0"}); err == nil {
		t.Fatal("an APN with a line break was sent to the modem")
	}
}

// TestGarbageFlood pours 8 MiB of line noise into the port: the backend
// neither crashes nor grows without bound, keeps the modem, and the modem
// still answers afterwards.
func TestGarbageFlood(t *testing.T) {
	r := newRig(t, 1, nil)
	info := r.wait(modem.Added, "")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i*7 + i/251)
		if i%4099 == 0 {
			chunk[i] = '\n' // some lines end, most are far too long
		}
	}
	for i := 0; i < 128; i++ {
		r.sims[0].InjectGarbage(chunk)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Errorf("heap grew by %d MiB during an 8 MiB flood", grew>>20)
	}
	if _, ok := r.b.Get(info.ID); !ok {
		t.Fatal("the modem was dropped by line noise")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	for i := 0; i < 5; i++ { // the first command may meet the tail of the noise
		if _, err = r.modem(info.ID).Connect(ctx, modem.ConnectParams{APN: "internet"}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("modem unusable after the flood: %v", err)
	}
	var garbage uint64
	for _, s := range r.b.PortStats() {
		garbage += s.GarbageBytes
	}
	if garbage == 0 {
		t.Error("no line noise counted")
	}
}

// The SIM PIN from pin_file unlocks a locked SIM, also after the modem
// restarts; a wrong one is reported and never sent twice, whatever the
// reopens (each try counts towards PUK).
func TestSIMPIN(t *testing.T) {
	for _, tt := range []struct {
		name, pin     string
		state, reason string
		tries         int
	}{
		{"right PIN", "4321", "registered", "", 2}, // again after the reopen: the SIM locked again
		{"wrong PIN", "1111", "locked", "sim-pin-refused", 1},
		{"none configured", "", "locked", "sim-pin", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			tries := 0
			r := newRigOpts(t, 1, func(_ int, m *sim.Modem) {
				id := m.Identity()
				id.PIN = "4321"
				m.SetIdentity(id)
				m.SetFaults(sim.Faults{PINRequired: true})
			}, func(o *at.BackendOptions) {
				o.PIN = func(at.PortConfig) (string, error) {
					mu.Lock()
					defer mu.Unlock()
					tries++
					return tt.pin, nil
				}
			})
			info := r.wait(modem.Added, "")
			if info.State != tt.state || info.StateReason != tt.reason {
				t.Fatalf("state %s (%s), want %s (%s)", info.State, info.StateReason, tt.state, tt.reason)
			}
			if tt.state == "registered" && info.SIM.IMSI != r.sims[0].Identity().IMSI {
				t.Errorf("IMSI %q not read after unlocking", info.SIM.IMSI)
			}
			// The modem restarts (unplug, replug) with its SIM locked again.
			r.sims[0].Unplug()
			r.wait(modem.Removed, info.ID)
			r.sims[0].SetFaults(sim.Faults{PINRequired: true})
			if err := r.sims[0].Plug(); err != nil {
				t.Fatal(err)
			}
			back := r.wait(modem.Added, info.ID)
			if back.State != tt.state || back.StateReason != tt.reason {
				t.Errorf("after a reopen: %s (%s)", back.State, back.StateReason)
			}
			mu.Lock()
			defer mu.Unlock()
			if tries != tt.tries {
				t.Errorf("PIN asked for %d times, want %d", tries, tt.tries)
			}
		})
	}
}
