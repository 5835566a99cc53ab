//go:build idlecpu

package mm_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/mm"
	"github.com/simproof/simproof/modem/sim"
)

// TestIdleCPU measures, and reports, the CPU the backend uses while four
// enabled modems sit idle under a real ModemManager (which polls each
// modem's signal every 30 s, so PropertiesChanged keeps arriving). It is a
// measurement, not an assertion; run it with
//
//	go test -tags idlecpu -run TestIdleCPU -v ./modem/mm/
//
// SIMPROOF_IDLE_SECONDS overrides the 60 s window. The simulators run in a
// child process so that this process's CPU is the backend's (plus an idle
// test binary).
func TestIdleCPU(t *testing.T) {
	const n = 4
	window := 60 * time.Second
	if s := os.Getenv("SIMPROOF_IDLE_SECONDS"); s != "" {
		secs, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		window = time.Duration(secs) * time.Second
	}
	b := newBench(t, 0)
	helper := exec.Command(os.Args[0], "-test.run=^TestIdleCPUSimHelper$")
	helper.Env = append(os.Environ(), "SIMPROOF_SIM_HELPER="+strconv.Itoa(n), "SIMPROOF_PORT_PREFIX="+b.prefix)
	in, _ := helper.StdinPipe()
	out, _ := helper.StdoutPipe()
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = helper.Wait() })
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("helper said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("simulator helper not ready in 30 s")
	}

	be := b.backend(mm.Options{EnableModems: true, Logger: slog.New(slog.DiscardHandler)})
	ev := collect(t, be)
	for i := range n {
		b.profile(i)
	}
	for i := range n {
		id := sim.DefaultIdentity(i).IMEI
		waitInfo(t, be, ev, id, probeTimeout, "registered", func(in modem.Info) bool { return in.State == "registered" })
	}
	mmPID := b.mm.PID()
	before, mmBefore := cpuTicks(t, "self"), cpuTicks(t, strconv.Itoa(mmPID))
	events := ev.mark()
	time.Sleep(window)
	after, mmAfter := cpuTicks(t, "self"), cpuTicks(t, strconv.Itoa(mmPID))
	const hz = 100 // USER_HZ on Linux
	used := time.Duration(after-before) * time.Second / hz
	mmUsed := time.Duration(mmAfter-mmBefore) * time.Second / hz
	t.Logf("idle %v with %d modems: backend process %v CPU (%.3f%% of one core), %d events; ModemManager %v",
		window, n, used, 100*used.Seconds()/window.Seconds(), ev.mark()-events, mmUsed)
}

// TestIdleCPUSimHelper is the child process of TestIdleCPU: it serves
// SIMPROOF_SIM_HELPER simulators until its stdin closes.
func TestIdleCPUSimHelper(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SIMPROOF_SIM_HELPER"))
	if n == 0 {
		t.Skip("only runs as TestIdleCPU's child")
	}
	for i := range n {
		m := sim.New(sim.DefaultIdentity(i))
		if err := m.ListenAbstract(fmt.Sprintf("%s-%d", os.Getenv("SIMPROOF_PORT_PREFIX"), i)); err != nil {
			t.Fatal(err)
		}
		defer m.Close()
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// cpuTicks is utime+stime of a process, from /proc/PID/stat.
func cpuTicks(t *testing.T, pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces; fields start after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
