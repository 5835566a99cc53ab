package netbind_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/netbind"
)

// The demo without root pins simulated modems to lo, each with a source
// address of its own; the operator emulator tells them apart by it.
func TestLoopbackBearerWithSource(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, host)
	}))
	defer srv.Close()

	refused, err := netbind.NewClient(netbind.ClientOptions{Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	if _, err := refused.Client.Get(srv.URL); !errors.Is(err, modem.ErrNoBearer) {
		t.Fatalf("lo without Loopback: %v, want no_bearer (lo has no global address)", err)
	}

	for _, src := range []string{"127.100.0.1", "127.100.0.2"} {
		p, err := netbind.NewClient(netbind.ClientOptions{Interface: "lo", Loopback: true, Source: []string{src}})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.Client.Get(srv.URL)
		if errors.Is(err, syscall.EPERM) {
			p.Close()
			t.Skipf("SO_BINDTODEVICE needs CAP_NET_RAW on this kernel: %v", err)
		}
		if err != nil {
			p.Close()
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p.Close()
		if got := strings.TrimSpace(string(body)); got != src {
			t.Errorf("server saw %s, want the bearer's source %s", got, src)
		}
	}
}
