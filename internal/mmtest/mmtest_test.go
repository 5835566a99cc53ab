package mmtest_test

import (
	"context"
	"testing"

	"github.com/simproof/simproof/internal/mmtest"
)

// TestDaemonLifecycle: the harness starts ModemManager on a private bus,
// sees it go on Kill and come back on Start, and passes SetProfile's
// errors through (an unknown plugin).
func TestDaemonLifecycle(t *testing.T) {
	bus := mmtest.StartBus(t)
	d := mmtest.StartModemManager(t, bus)
	if !d.Running() || d.PID() == 0 {
		t.Fatal("ModemManager not on the bus after Start")
	}
	if err := d.SetProfile(context.Background(), "x", "no-such-plugin", "abstract:nothing"); err == nil {
		t.Error("SetProfile with an unknown plugin succeeded")
	}
	d.Kill()
	if d.Running() {
		t.Fatal("ModemManager still owns its name after Kill")
	}
	d.Start()
	if !d.Running() {
		t.Fatal("ModemManager not back after Start")
	}
	if !d.LogContains("test profile set to: 'x'") {
		t.Errorf("log %s lacks the SetProfile line: %s", d.Log, d.LogTail(5))
	}
}
