package main

import (
	"context"
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/simproof/simproof/agent"
)

// footprint is section 3: a real simproofd process, built stripped and
// static as a release would be.
type footprint struct {
	BuildCmd           string
	Bin                map[string]int64 // GOARCH → bytes
	Static             map[string]bool  // GOARCH → no ELF interpreter, no shared libraries
	RSS                map[int]int64    // modems → VmRSS kB after settling
	HWM                map[int]int64    // modems → VmHWM kB
	Settle             time.Duration
	IdleModems         int
	IdleWindow         time.Duration
	IdleCPU            time.Duration
	IdleRSSAfterWindow int64
}

func (f footprint) IdlePercent() float64 {
	return 100 * f.IdleCPU.Seconds() / f.IdleWindow.Seconds()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// repoRoot is the module's directory (go env GOMOD).
func repoRoot() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the simproof module")
	}
	return filepath.Dir(mod), nil
}

func runFootprint(ctx context.Context, h *harness, o options, progress func(string)) (*footprint, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir := h.TempDir()
	f := &footprint{Bin: map[string]int64{}, Static: map[string]bool{}, RSS: map[int]int64{}, HWM: map[int]int64{}, Settle: 5 * time.Second,
		IdleModems: 8, IdleWindow: o.idle}
	f.BuildCmd = "CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go build -trimpath -ldflags '-s -w' -o simproofd ./cmd/simproofd"
	for _, arch := range []string{"amd64", "arm64"} {
		progress("build simproofd for " + arch)
		out := filepath.Join(dir, "simproofd-"+arch)
		cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/simproofd")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build simproofd %s: %v\n%s", arch, err, b)
		}
		st, err := os.Stat(out)
		if err != nil {
			return nil, err
		}
		f.Bin[arch] = st.Size()
		f.Static[arch] = isStatic(out)
	}
	bin := filepath.Join(dir, "simproofd-"+runtime.GOARCH)
	if _, ok := f.Bin[runtime.GOARCH]; !ok {
		return f, nil // this machine's architecture is neither: no process to measure
	}
	for _, n := range []int{0, 32} {
		progress(fmt.Sprintf("simproofd idle with %d simulated modems: resident memory", n))
		p, err := startDaemon(ctx, h, bin, filepath.Join(dir, fmt.Sprintf("d%d", n)), n)
		if err != nil {
			return nil, err
		}
		time.Sleep(f.Settle)
		f.RSS[n], _ = procStatusKB(p.Process.Pid, "VmRSS")
		f.HWM[n], _ = procStatusKB(p.Process.Pid, "VmHWM")
		stopDaemon(p)
	}
	progress(fmt.Sprintf("simproofd idle with %d simulated modems: CPU over %s", f.IdleModems, f.IdleWindow))
	p, err := startDaemon(ctx, h, bin, filepath.Join(dir, "idle"), f.IdleModems)
	if err != nil {
		return nil, err
	}
	defer stopDaemon(p)
	time.Sleep(f.Settle)
	c0, err := procCPU(p.Process.Pid)
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(f.IdleWindow):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c1, err := procCPU(p.Process.Pid)
	if err != nil {
		return nil, err
	}
	f.IdleCPU = c1 - c0
	f.IdleRSSAfterWindow, _ = procStatusKB(p.Process.Pid, "VmRSS")
	return f, nil
}

// startDaemon runs simproofd with the built-in simulator (bearers on lo)
// and waits until its socket lists every modem.
func startDaemon(ctx context.Context, h *harness, bin, dir string, modems int) (*exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "simproof.sock")
	cfg := fmt.Sprintf("socket: {path: %s}\nstate_dir: %s\nsimulator: {modems: %d, dir: %s, network: loopback}\n",
		sock, filepath.Join(dir, "state"), modems, filepath.Join(dir, "sim"))
	cfgPath := filepath.Join(dir, "simproof.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "simproofd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start simproofd: %w", err)
	}
	h.Cleanup(func() { stopDaemon(cmd); logf.Close() })
	cl := unixClient(sock, 1)
	cl.Timeout = 2 * time.Second
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var list agent.ModemList
		r := &rig{api: cl}
		if st, err := r.do(ctx, http.MethodGet, "/v1/modems", nil, &list); err == nil && st == 200 && len(list.Modems) == modems {
			return cmd, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopDaemon(cmd)
	log, _ := os.ReadFile(logf.Name())
	return nil, fmt.Errorf("simproofd with %d modems not ready within 30 s; its log:\n%s", modems, tail(string(log), 2000))
}

func stopDaemon(cmd *exec.Cmd) {
	if cmd.ProcessState != nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// isStatic: an ELF file with no interpreter and no shared libraries.
func isStatic(path string) bool {
	ef, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	libs, err := ef.ImportedLibraries()
	return err == nil && len(libs) == 0
}
