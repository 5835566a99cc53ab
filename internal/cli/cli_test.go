package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

type staticModem struct{ info modem.Info }

func (s staticModem) Info() modem.Info { return s.info }
func (s staticModem) Connect(context.Context, modem.ConnectParams) (modem.DataInfo, error) {
	return modem.DataInfo{}, modem.ErrNoBearer
}
func (s staticModem) Disconnect(context.Context) error { return nil }

func startDaemon(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := agent.ListenUnix(path, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	hub := agent.NewHub(8)
	reg := agent.NewRegistry(hub)
	q := 64
	reg.Put(staticModem{modem.Info{ID: "356938035643809", Backend: "at", Simulated: true, State: "registered",
		IMEI: "356938035643809", Registration: "home", AccessTechnology: "lte", SignalQuality: &q,
		SIM:     modem.SIM{ICCID: "89441000301234567890", IMSI: "001010123456789", OwnNumbers: []string{"+447700900123"}},
		Network: modem.Network{OperatorID: "00101", OperatorName: "Test Operator"}}})
	api := &agent.API{Version: "t", Started: time.Now(), Registry: reg, Hub: hub}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { agent.Serve(ctx, l, api.Handler(), slog.New(slog.DiscardHandler), time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	sock := startDaemon(t)
	missing := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		jsonBody bool
	}{
		{"modems table", []string{"--socket", sock, "modems"}, 0, "Test Operator (00101)", "", false},
		{"modems json", []string{"modems", "--socket", sock, "--json"}, 0, `"iccid": "89441000301234567890"`, "", true},
		{"modem", []string{"--socket", sock, "modem", "356938035643809"}, 0, "+447700900123", "", false},
		{"modem json after arg", []string{"--socket", sock, "modem", "imei:356938035643809", "--json"}, 0, `"imsi": "001010123456789"`, "", true},
		{"unknown modem", []string{"--socket", sock, "modem", "999"}, 3, "", "modem_not_found", false},
		{"health", []string{"--socket", sock, "health"}, 0, "status:  ok", "", false},
		{"unreachable", []string{"--socket", missing, "health"}, 3, "", "daemon unreachable", false},
		{"unknown command", []string{"frobnicate"}, 2, "", "unknown command", false},
		{"missing arg", []string{"--socket", sock, "modem"}, 2, "", "want 1 argument", false},
		{"bad flag", []string{"modems", "--bogus"}, 2, "", "flag provided but not defined", false},
		{"no command", nil, 2, "", "usage:", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errs)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q lacks %q", out, tt.stdout)
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errs, tt.stderr)
			}
			if tt.jsonBody && !json.Valid([]byte(out)) {
				t.Errorf("stdout is not JSON: %s", out)
			}
		})
	}
}

// Every command of api.md's CLI is reachable (a lost registration once hid
// half of them).
func TestEveryCommandRegistered(t *testing.T) {
	_, _, errs := run(t, "--help")
	for _, name := range []string{"health", "modems", "modem", "connect", "disconnect", "check", "checks", "open-url", "demo", "sim"} {
		if !strings.Contains(errs, "\n  "+name+" ") {
			t.Errorf("usage lacks %q:\n%s", name, errs)
		}
		if code, _, e := run(t, name, "--bogus-flag"); code != 2 || strings.Contains(e, "unknown command") {
			t.Errorf("%s: exit %d, %s", name, code, e)
		}
	}
}

func TestCheckExit(t *testing.T) {
	tru, fal := true, false
	tests := []struct {
		c    agent.Check
		want int
	}{
		{agent.Check{Status: "completed", Result: &agent.CheckResult{Result: &verify.Result{Verified: &tru}}}, 0},
		{agent.Check{Status: "completed", Result: &agent.CheckResult{Result: &verify.Result{Verified: &fal, Reason: "not_mobile_ip"}}}, 1},
		{agent.Check{Status: "completed", Result: &agent.CheckResult{Result: &verify.Result{}}}, 0},
		{agent.Check{Status: "completed", Result: &agent.CheckResult{Device: &redirect.Result{FinalStatus: 200}}}, 0},
		{agent.Check{Status: "failed", Error: &agent.CheckError{Code: "expired"}}, 3},
		{agent.Check{Status: "interrupted", Error: &agent.CheckError{Code: "interrupted"}}, 3},
		{agent.Check{Status: "running"}, 3},
	}
	for _, tt := range tests {
		if got := CheckExit(&tt.c); got != tt.want {
			t.Errorf("%s %+v: exit %d, want %d", tt.c.Status, tt.c.Result, got, tt.want)
		}
	}
}
