package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/simproof/simproof/verify/emulator"
)

// TestSIGKILLMidCheck builds the real simproofd, kills it with SIGKILL while
// two checks are in their device steps, starts it again on the same state
// directory, and requires both checks to be found and finished: the IDlayr
// v0.1 check resumed by polling its provider id, the v0.2 one interrupted
// with it. Nothing accepted is lost.
func TestSIGKILLMidCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "simproofd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Modem i of the built-in simulator sends from 127.100.0.i+1 (lo).
	emu, err := emulator.StartLoopback(emulator.Config{Subscribers: map[netip.Addr]string{
		netip.MustParseAddr("127.100.0.1"): "447700900000", netip.MustParseAddr("127.100.0.2"): "447700900001"}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	emu.SetFaults("447700900000", emulator.Faults{SlowHop: time.Minute, TTL: 3 * time.Second})
	emu.SetFaults("447700900001", emulator.Faults{SlowHop: time.Minute})
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", string(emu.CAPEM()))
	write("tru.json", fmt.Sprintf(`{"credentials":[{"client_id":%q,"client_secret":%q,"data_residency":"eu"}]}`,
		emulator.DefaultClientID, emulator.DefaultClientSecret))
	sock := filepath.Join(dir, "s.sock")
	write("simproof.yaml", fmt.Sprintf(`socket: {path: %s}
state_dir: %s/state
simulator: {modems: 2, dir: %s/tty, network: loopback}
tls: {ca_file: %s/ca.pem}
providers:
  idlayr: {base_url: %q, credentials_file: %s/tru.json}
`, sock, dir, dir, dir, emu.BaseURL(emulator.RoleIDlayr), dir))

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config", filepath.Join(dir, "simproof.yaml"))
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	c := &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	call := func(method, path string, body any) map[string]any {
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "http://simproof"+path, r)
		resp, err := c.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	waitFor := func(what string, ok func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	daemon := start()
	waitFor("two modems", func() bool {
		m := call("GET", "/v1/modems", nil)
		list, _ := m["modems"].([]any)
		return len(list) == 2
	})
	v1 := call("POST", "/v1/checks", map[string]any{"provider": "idlayr", "phone_number": "+447700900000"})
	v2 := call("POST", "/v1/checks", map[string]any{"provider": "idlayr", "version": "v0.2", "phone_number": "+447700900001"})
	ids := []string{fmt.Sprint(v1["id"]), fmt.Sprint(v2["id"])}
	providerIDs := map[string]string{}
	for _, id := range ids {
		waitFor("the device step of "+id, func() bool {
			m := call("GET", "/v1/checks/"+id, nil)
			providerIDs[id], _ = m["provider_check_id"].(string)
			return m["stage"] == "device" && providerIDs[id] != ""
		})
	}
	if err := daemon.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	daemon.Wait()
	emu.ClearFaults()

	// The stale socket is replaced, the journal reopened.
	start()
	for i, id := range ids {
		var m map[string]any
		waitFor("check "+id+" to be final after the restart", func() bool {
			m = call("GET", "/v1/checks/"+id+"?wait=20s", nil)
			s, _ := m["status"].(string)
			return s == "completed" || s == "failed" || s == "interrupted"
		})
		code := ""
		if e, ok := m["error"].(map[string]any); ok {
			code, _ = e["code"].(string)
		}
		if m["provider_check_id"] != providerIDs[id] {
			t.Errorf("check %s lost its provider id: %v", id, m["provider_check_id"])
		}
		switch i {
		case 0: // v0.1: resumed; its device step died with the process, so the provider expires it
			if m["status"] != "failed" || code != "expired" {
				t.Errorf("v0.1 check after SIGKILL: %v %s", m["status"], code)
			}
		case 1: // v0.2: the code died with the process
			if m["status"] != "interrupted" || code != "interrupted" {
				t.Errorf("v0.2 check after SIGKILL: %v %s", m["status"], code)
			}
		}
	}
}
