package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/internal/mmtest"
	"github.com/simproof/simproof/modem/at"
	"github.com/simproof/simproof/modem/sim"
)

// TestBackendsAgree drives one simulated modem from both backends at once:
// the real ModemManager (over an abstract socket, on a private bus) and the
// AT backend (over a pty). simproofd with either backend must list it with
// the same id and the same fields.
func TestBackendsAgree(t *testing.T) {
	mmtest.Require(t, "dbus-daemon", "ModemManager")
	bus := mmtest.StartBus(t)
	mmd := mmtest.StartModemManager(t, bus)
	m := sim.New(sim.DefaultIdentity(42))
	t.Cleanup(func() { m.Close() })
	port := fmt.Sprintf("abstract:simproof-agree-%d", time.Now().UnixNano())
	if err := m.ListenAbstract(port); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ttySIM0")
	if err := m.ServePTY(link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := mmd.SetProfile(ctx, "agree0", "generic", port); err != nil {
		t.Fatal(err)
	}

	mmb, err := newMMBackend(ctx, config.ModemManager{Enabled: true, Bus: bus.Address, EnableModems: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	atb := at.NewBackend(at.BackendOptions{Ports: []at.PortConfig{{Device: link, Simulated: true}}, CommandTimeout: 2 * time.Second})
	viaMM := serveBackend(t, "modemmanager", mmb)
	viaAT := serveBackend(t, "at", atb)

	id := m.Identity().IMEI
	fields := func(v map[string]any) map[string]any {
		sim := v["sim"].(map[string]any)
		return map[string]any{
			"id": v["id"], "imei": v["imei"], "manufacturer": v["manufacturer"], "model": v["model"],
			"revision": v["revision"], "state": v["state"], "registration": v["registration"],
			"access_technology": v["access_technology"], "network": v["network"],
			"sim.iccid": sim["iccid"], "sim.imsi": sim["imsi"], "sim.operator_id": sim["operator_id"],
			"sim.own_numbers": sim["own_numbers"],
		}
	}
	diff := func(a, b map[string]any) []string {
		var out []string
		fa, fb := fields(a), fields(b)
		for k := range fa {
			ja, _ := json.Marshal(fa[k])
			jb, _ := json.Marshal(fb[k])
			if string(ja) != string(jb) {
				out = append(out, fmt.Sprintf("%s: modemmanager %s, at %s", k, ja, jb))
			}
		}
		return out
	}
	// ModemManager fills properties in as it enables the modem: wait,
	// bounded, until both views settle on the same values.
	a, b := waitModem(t, viaMM, id), waitModem(t, viaAT, id)
	deadline := time.Now().Add(30 * time.Second)
	for d := diff(a, b); len(d) > 0; d = diff(a, b) {
		if time.Now().After(deadline) {
			for _, line := range d {
				t.Error(line)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
		a, b = waitModem(t, viaMM, id), waitModem(t, viaAT, id)
	}
	if a["backend"] != "modemmanager" || b["backend"] != "at" {
		t.Errorf("backends %v %v", a["backend"], b["backend"])
	}
	// signal_quality is ModemManager's own reading (+CIND bars) against
	// +CSQ's rssi×100/31 in the AT backend: both present, not equal.
	if a["signal_quality"] == nil || b["signal_quality"] == nil {
		t.Errorf("signal missing: %v %v", a["signal_quality"], b["signal_quality"])
	}
}

// serveBackend runs a daemon core with one backend and returns its client.
func serveBackend(t *testing.T, name string, b RunningBackend) *bench {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.StateDir = dir
	d := &Daemon{Config: cfg, Backends: map[string]RunningBackend{name: b}, Pinner: nopPinner{}}
	l, err := ListenUnix(filepath.Join(dir, "s.sock"), 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &bench{t: t, client: unixClient(filepath.Join(dir, "s.sock"))}
}

func waitModem(t *testing.T, b *bench, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		var v map[string]any
		if b.do("GET", "/v1/modems/"+id, nil, &v) == 200 {
			last = v
			if v["state"] == "registered" && v["sim"].(map[string]any)["imsi"] != "" {
				return v
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("modem %s never listed as registered (last %v)", id, last)
	return nil
}
