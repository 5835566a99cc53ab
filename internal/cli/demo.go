package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/verify/emulator"
)

// demoConfig runs the daemon on built-in simulated modems, everything under
// one temporary directory.
const demoConfig = `# written by simproof demo
socket: {path: %[1]s/simproof.sock, mode: "0600"}
state_dir: %[1]s/state
log: {level: info, format: text}
simulator: {modems: %[2]d, dir: %[1]s/tty, network: loopback}
tls: {ca_file: %[1]s/emulator-ca.pem}
providers:
  idlayr: {base_url: "%[3]s", credentials_file: %[1]s/tru.json}
  plasgate: {base_url: "%[4]s", private_key_file: %[1]s/plasgate.key, secret_file: %[1]s/plasgate.secret,
             redirect_uri: "https://app.example.test/plasgate/callback"}
`

func cmdDemo(ctx context.Context, env Env, g *globals, args []string) int {
	var modems int
	var keep bool
	if _, ok := parse(env, g, "demo", args, 0, func(fs *flag.FlagSet) {
		fs.IntVar(&modems, "modems", 2, "number of simulated modems")
		fs.BoolVar(&keep, "keep", false, "keep the temporary directory")
	}); !ok {
		return ExitUsage
	}
	daemon, err := findDaemon()
	if err != nil {
		return fail(env, err)
	}
	dir, err := os.MkdirTemp("", "simproof-demo-")
	if err != nil {
		return fail(env, err)
	}
	if keep {
		fmt.Fprintf(env.Stdout, "demo directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	emu, err := startDemoEmulator(dir, modems)
	if err != nil {
		return fail(env, err)
	}
	defer emu.Close()
	cfgPath := filepath.Join(dir, "simproof.yaml")
	cfgText := fmt.Sprintf(demoConfig, dir, modems, emu.BaseURL(emulator.RoleIDlayr), emu.BaseURL(emulator.RolePlasGate))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return fail(env, err)
	}
	logPath := filepath.Join(dir, "simproofd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fail(env, err)
	}
	defer logf.Close()

	fmt.Fprintf(env.Stdout, "== simproof demo: %d simulated modems, daemon %s\n", modems, daemon)
	cmd := exec.Command(daemon, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fail(env, fmt.Errorf("start %s: %w", daemon, err))
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopDaemon := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	c := NewClient(filepath.Join(dir, "simproof.sock"))
	ms, err := waitModems(ctx, c, modems, exited)
	if err != nil {
		stopDaemon()
		showLog(env, logPath)
		return fail(env, err)
	}
	fmt.Fprintln(env.Stdout, "\n$ simproof modems")
	printModemTable(env.Stdout, ms.Modems)
	for _, m := range ms.Modems {
		fmt.Fprintf(env.Stdout, "\n$ simproof modem %s\n", m.ID)
		printModem(env.Stdout, m)
	}
	code := demoChecks(ctx, env, c, ms.Modems, g.json)
	stopDaemon()
	fmt.Fprintln(env.Stdout, "\n== daemon stopped; demo done")
	return code
}

// waitModems polls the daemon until n modems show their identity, the
// daemon exits, or 30 s pass.
func waitModems(ctx context.Context, c *Client, n int, exited <-chan error) (agent.ModemList, error) {
	deadline := time.Now().Add(30 * time.Second)
	var last agent.ModemList
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return last, fmt.Errorf("simproofd exited: %v", err)
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		var list agent.ModemList
		if _, err := c.Do(ctx, "GET", "/v1/modems", nil, &list); err != nil {
			lastErr = err
			continue
		}
		last = list
		ready := 0
		for _, m := range list.Modems {
			if m.IMEI != "" && m.SIM.ICCID != "" && m.SIM.IMSI != "" {
				ready++
			}
		}
		if ready >= n {
			return list, nil
		}
	}
	if lastErr != nil && !errors.Is(lastErr, ErrUnreachable) {
		return last, lastErr
	}
	return last, fmt.Errorf("timed out waiting for %d modems with identities (have %d, last error: %v)", n, len(last.Modems), lastErr)
}

func showLog(env Env, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	fmt.Fprintf(env.Stderr, "--- last lines of simproofd's log ---\n%s\n", strings.Join(lines, "\n"))
}

// findDaemon looks for simproofd beside this executable, then on PATH.
func findDaemon() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "simproofd")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("simproofd")
	if err != nil {
		return "", errors.New("simproofd not found beside simproof or on PATH (run `make build`)")
	}
	return p, nil
}
