package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify/emulator"
)

// startDemoEmulator serves emulated IDlayr and PlasGate APIs and an operator
// on loopback, and writes the files the daemon's configuration names: the
// emulator's CA and the providers' credentials (mode 0600, as the daemon
// demands of secret files). The operator knows simulated modem i by its
// loopback bearer address and answers for its SIM's number.
func startDemoEmulator(dir string, modems int) (*emulator.Emulator, error) {
	subs := map[netip.Addr]string{}
	for i := 0; i < modems; i++ {
		subs[agent.LoopbackBearer(i).Addr()] = fmt.Sprintf("447700900%03d", i)
	}
	emu, err := emulator.StartLoopback(emulator.Config{Subscribers: subs,
		MobileRanges: []netip.Prefix{netip.MustParsePrefix("127.100.0.0/16")}})
	if err != nil {
		return nil, fmt.Errorf("start the provider emulator: %w", err)
	}
	tru, _ := json.Marshal(map[string]any{"credentials": []map[string]string{{
		"client_id": emulator.DefaultClientID, "client_secret": emulator.DefaultClientSecret, "data_residency": "eu"}}})
	files := map[string][]byte{
		"emulator-ca.pem": emu.CAPEM(),
		"tru.json":        tru,
		"plasgate.key":    []byte(emulator.DefaultPlasGatePrivateKey + "\n"),
		"plasgate.secret": []byte(emulator.DefaultPlasGateSecret + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			emu.Close()
			return nil, err
		}
	}
	return emu, nil
}

// demoChecks runs one IDlayr and one PlasGate check through simulated modems
// and one that must fail (the wrong SIM), printing each trace and verdict.
func demoChecks(ctx context.Context, env Env, c *Client, ms []modem.Info, asJSON bool) int {
	fmt.Fprint(env.Stdout, `
== How this demo pins, and what it proves
Without root the demo cannot create network namespaces, so each simulated
modem's bearer is the loopback interface: every socket of a check's device
step is bound to "lo" with SO_BINDTODEVICE and to the modem's own address
(127.100.0.N). The emulated operator identifies the SIM by that source
address, exactly as a mobile network does by the bearer's address, so the
verdicts below show the right SIM answering for the right number, and the
wrong SIM failing. It does not show isolation from Wi-Fi or Ethernet: the
tests in network namespaces prove that (see README, Testing).
`)
	if len(ms) == 0 {
		return ExitFailed
	}
	second := ms[0]
	if len(ms) > 1 {
		second = ms[1]
	}
	number := func(m modem.Info) string {
		if len(m.SIM.OwnNumbers) > 0 {
			return m.SIM.OwnNumbers[0]
		}
		return ""
	}
	runs := []struct {
		title string
		req   agent.CheckRequest
		want  int
	}{
		{"IDlayr PhoneCheck v0.1, modem " + ms[0].ID + " proves its own number",
			agent.CheckRequest{Provider: "idlayr", PhoneNumber: number(ms[0]), Modem: ms[0].ID}, ExitOK},
		{"PlasGate IP Verification, modem " + second.ID + " proves its own number",
			agent.CheckRequest{Provider: "plasgate", PhoneNumber: number(second), Modem: second.ID}, ExitOK},
	}
	if len(ms) > 1 {
		runs = append(runs, struct {
			title string
			req   agent.CheckRequest
			want  int
		}{"IDlayr PhoneCheck, modem " + second.ID + " claims modem " + ms[0].ID + "'s number (must fail)",
			agent.CheckRequest{Provider: "idlayr", PhoneNumber: number(ms[0]), Modem: second.ID}, ExitNotVerified})
	}
	code := ExitOK
	for _, r := range runs {
		fmt.Fprintf(env.Stdout, "\n== %s\n$ simproof check --provider %s --phone %s --modem %s --trace\n",
			r.title, r.req.Provider, r.req.PhoneNumber, r.req.Modem)
		var chk agent.Check
		raw, err := c.Do(ctx, "POST", "/v1/checks?wait=60s", r.req, &chk)
		if err != nil {
			fmt.Fprintf(env.Stdout, "error: %v\n", err)
			code = ExitFailed
			continue
		}
		if asJSON {
			printRaw(env, raw)
		} else {
			printCheck(env.Stdout, &chk, true)
		}
		got := CheckExit(&chk)
		fmt.Fprintf(env.Stdout, "exit status %d\n", got)
		if got != r.want {
			fmt.Fprintf(env.Stdout, "UNEXPECTED: wanted exit status %d\n", r.want)
			code = ExitFailed
		}
	}
	if !asJSON {
		showMetrics(ctx, env, c)
	}
	return code
}

// showMetrics prints the metrics the checks above moved, as Prometheus
// would scrape them from the socket (or metrics_listen).
func showMetrics(ctx context.Context, env Env, c *Client) {
	raw, err := c.Do(ctx, "GET", "/metrics", nil, nil)
	if err != nil {
		fmt.Fprintf(env.Stdout, "metrics: %v\n", err)
		return
	}
	fmt.Fprintln(env.Stdout, "\n$ curl --unix-socket …/simproof.sock http://simproof/metrics | grep -E 'checks_total|duration_seconds_count|signal|connected|at_commands'")
	for _, line := range strings.Split(string(raw), "\n") {
		for _, k := range []string{"simproof_checks_total{", "simproof_check_duration_seconds_count", "simproof_modem_signal_quality{",
			"simproof_modem_connected{", "simproof_at_commands_total{"} {
			if strings.HasPrefix(line, k) {
				fmt.Fprintln(env.Stdout, line)
			}
		}
	}
}
