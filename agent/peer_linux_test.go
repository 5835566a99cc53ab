package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The peer test runs this test binary again as another user; in that role
// it only asks the socket for /v1/health and prints the status.
func TestMain(m *testing.M) {
	if sock := os.Getenv("SIMPROOF_PEER_CLIENT"); sock != "" {
		resp, err := unixClient(sock).Get("http://simproof/v1/health")
		if err != nil {
			fmt.Print("error: ", err)
			os.Exit(0)
		}
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s", resp.StatusCode, body)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPeerAuthorization(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client process under another uid")
	}
	// A directory and binary the other user can reach.
	dir, err := os.MkdirTemp("", "simproof-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self, _ := os.Executable()
	bin := filepath.Join(dir, "client")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody, group = 65534, 4242
	tests := []struct {
		name   string
		policy *PeerPolicy
		groups []uint32
		want   string
	}{
		{"not allowed", NewPeerPolicy(nil, nil), nil, "403"},
		{"allowed uid", NewPeerPolicy([]int{nobody}, nil), nil, "200"},
		{"allowed primary gid", NewPeerPolicy(nil, []int{nobody}), nil, "200"},
		{"allowed supplementary gid (SO_PEERGROUPS)", NewPeerPolicy(nil, []int{group}), []uint32{group}, "200"},
		{"other supplementary gid", NewPeerPolicy(nil, []int{group}), []uint32{group + 1}, "403"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
			l, err := ListenUnix(sock, 0o666, -1)
			if err != nil {
				t.Fatal(err)
			}
			hub := NewHub(1)
			api := &API{Started: time.Now(), Registry: NewRegistry(hub), Hub: hub, Peers: tt.policy}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { Serve(ctx, l, api.Handler(), slog.New(slog.DiscardHandler), time.Second); close(done) }()
			defer func() { cancel(); <-done }()

			cmd := exec.Command(bin)
			cmd.Env = []string{"SIMPROOF_PEER_CLIENT=" + sock}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: tt.groups}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("client: %v: %s", err, out)
			}
			if !strings.HasPrefix(string(out), tt.want) {
				t.Fatalf("client as uid %d got %q, want %s", nobody, out, tt.want)
			}
			if tt.want == "403" && !strings.Contains(string(out), `"code":"forbidden"`) {
				t.Errorf("403 without the forbidden problem: %s", out)
			}
			// Root is always allowed.
			resp, err := unixClient(sock).Get("http://simproof/v1/health")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("root refused: %v %v", err, resp)
			}
			resp.Body.Close()
		})
	}
}
