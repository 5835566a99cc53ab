package netbind_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/internal/nstest"
	"github.com/simproof/simproof/netbind"
	"golang.org/x/sys/unix"
)

// Environment of the helper subprocess TestResolvConfHelper.
const (
	envMode      = "NETBIND_TEST_HELPER" // system, pinned or rotate
	envResolv    = "NETBIND_TEST_RESOLV" // resolv.conf to mount over /etc/resolv.conf
	envDNS       = "NETBIND_TEST_DNS"    // comma-separated bearer DNS servers
	envParentMnt = "NETBIND_TEST_PARENT_MNT"
)

// TestPinnedResolver asks the pinned resolver in-process: the carrier's
// answer comes back, and the ISP's DNS (reachable through eth0's default
// route) never hears a query.
func TestPinnedResolver(t *testing.T) {
	bn := newBench(t, 1)
	p := bn.apply(t, 0, true, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before := bn.eth0Tx(t)
	got, err := p.Resolver.LookupNetIP(ctx, "ip", testName)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{bn.tp.ServerAddr4, bn.tp.ServerAddr6}
	slices.SortFunc(got, netip.Addr.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("lookup = %v, want the carrier's %v", got, want)
	}
	if n := bn.ispDNS.Queries(); n != 0 {
		t.Errorf("ISP DNS got %d queries", n)
	}
	if sent := bn.eth0Tx(t) - before; sent != 0 {
		t.Errorf("eth0 sent %d packets", sent)
	}

	t.Run("no DNS servers", func(t *testing.T) {
		p := bn.client(t, bn.tp.Modems[0].Interface, nil)
		_, err := p.Resolver.LookupNetIP(ctx, "ip", testName)
		if !errors.Is(err, netbind.ErrNoDNS) {
			// Go's resolver wraps Dial errors in a *net.DNSError.
			if de := (*net.DNSError)(nil); !errors.As(err, &de) || !strings.Contains(err.Error(), netbind.ErrNoDNS.Error()) {
				t.Errorf("lookup with no DNS servers: %v, want %v", err, netbind.ErrNoDNS)
			}
		}
		if _, _, err := fetch(t, p, "http://"+testName+"/"); err == nil {
			t.Errorf("fetch by name with no DNS servers succeeded")
		}
		if n := bn.ispDNS.Queries(); n != 0 {
			t.Errorf("ISP DNS got %d queries", n)
		}
	})
}

// TestResolvConfIgnored runs lookups in a subprocess inside the device
// namespace whose /etc/resolv.conf (bind-mounted in the subprocess's own
// mount namespace, which `ip netns exec` creates) names the ISP's DNS. The
// system resolver there reaches the ISP — the setup works — while the
// pinned resolver still gets the carrier's answer and the ISP hears nothing
// more; a dead first bearer server is rotated past.
func TestResolvConfIgnored(t *testing.T) {
	bn := newBench(t, 1)
	bn.apply(t, 0, true, false)
	hostResolv, hostErr := os.ReadFile("/etc/resolv.conf")
	if hostErr != nil {
		t.Skipf("no /etc/resolv.conf to mount over: %v", hostErr)
	}
	bn.tp.Carrier.AddAddr(t, "lo", "100.64.255.54/32") // a DNS address nobody answers on
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	conf := fmt.Sprintf("nameserver %s\noptions timeout:2 attempts:2\n", bn.tp.ISPDNS4)
	if err := os.WriteFile(resolv, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	run := func(mode, dns string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := bn.tp.Device.Command(ctx, os.Args[0], "-test.run=^TestResolvConfHelper$", "-test.v")
		cmd.Env = append(os.Environ(), envMode+"="+mode, envResolv+"="+resolv, envDNS+"="+dns, envParentMnt+"="+mnt,
			"GORACE=atexit_sleep_ms=0") // a -race binary otherwise idles 1s at exit
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper %s: %v\n%s", mode, err, out)
		}
		var answers []string
		for _, l := range strings.Split(string(out), "\n") {
			if a, ok := strings.CutPrefix(l, "ANSWER="); ok {
				answers = append(answers, a)
			}
		}
		return answers
	}

	if got := run("system", ""); !slices.Equal(got, []string{decoy4.String()}) {
		t.Fatalf("system resolver in the helper = %v, want the ISP's %v: the resolv.conf mount did not take", got, decoy4)
	}
	isp := bn.ispDNS.Queries()
	if isp == 0 {
		t.Fatal("the ISP DNS counted no query from the system resolver")
	}
	carrier := bn.carrierDNS.Queries()
	if got := run("pinned", bn.tp.CarrierDNS4.String()); !slices.Equal(got, []string{bn.tp.ServerAddr4.String()}) {
		t.Errorf("pinned resolver = %v, want the carrier's %v", got, bn.tp.ServerAddr4)
	}
	if got := run("rotate", "100.64.255.54,"+bn.tp.CarrierDNS4.String()); len(got) != 4 ||
		slices.ContainsFunc(got, func(a string) bool { return a != bn.tp.ServerAddr4.String() }) {
		t.Errorf("rotating resolver = %v, want the carrier's %v four times", got, bn.tp.ServerAddr4)
	}
	if n := bn.ispDNS.Queries(); n != isp {
		t.Errorf("ISP DNS got %d queries from the pinned resolver", n-isp)
	}
	if n := bn.carrierDNS.Queries() - carrier; n < 5 {
		t.Errorf("carrier DNS got %d queries, want at least 5", n)
	}
	if after, err := os.ReadFile("/etc/resolv.conf"); err != nil || !bytes.Equal(after, hostResolv) {
		t.Errorf("host /etc/resolv.conf changed (%v)", err)
	}
}

// TestResolvConfHelper is TestResolvConfIgnored's subprocess.
func TestResolvConfHelper(t *testing.T) {
	mode := os.Getenv(envMode)
	if mode == "" {
		t.Skip("subprocess of TestResolvConfIgnored")
	}
	// Mount only in a mount namespace of our own, never the parent's.
	if mnt, err := os.Readlink("/proc/self/ns/mnt"); err != nil || mnt == os.Getenv(envParentMnt) {
		t.Fatalf("not in a private mount namespace (%s, %v)", mnt, err)
	}
	if err := unix.Mount(os.Getenv(envResolv), "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount resolv.conf: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lookups, r := 1, &net.Resolver{PreferGo: true}
	if mode != "system" {
		// Already inside the device namespace: no NetNS option.
		p, err := netbind.NewClient(netbind.ClientOptions{Interface: "wwan0", DNS: strings.Split(os.Getenv(envDNS), ",")})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		r = p.Resolver
		if mode == "rotate" {
			lookups = 4
		}
	}
	for range lookups {
		addrs, err := r.LookupNetIP(ctx, "ip4", testName)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			fmt.Printf("ANSWER=%s\n", a)
		}
	}
}

// TestTLSHTTP1NoRedirect: HTTPS through the bearer with the test CA from
// ExtraCAFile, HTTP/1.1 although the server offers h2, and redirects
// returned rather than followed.
func TestTLSHTTP1NoRedirect(t *testing.T) {
	bn := newBench(t, 1)
	bn.apply(t, 0, true, true)
	m := bn.tp.Modems[0]
	mux := http.NewServeMux()
	mux.Handle("/", nstest.EchoHandler())
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusFound)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = bn.tp.Server.Listen(t, "tcp", ":443")
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the no-CA subtest's handshake failure
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	newClient := func(extraCA string) *netbind.Pinned {
		p, err := netbind.NewClient(netbind.ClientOptions{Interface: m.Interface, DNS: []string{bn.tp.CarrierDNS4.String()},
			NetNS: bn.tp.Device.Path(), ExtraCAFile: extraCA})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	p := newClient(ca)
	before := bn.eth0Tx(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+tlsName+"/", nil)
	resp, hop, err := p.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/1.1" || resp.Header.Get("X-Proto") != "HTTP/1.1" {
		t.Errorf("protocol %s, server saw %s; want HTTP/1.1", resp.Proto, resp.Header.Get("X-Proto"))
	}
	if hop.Interface != m.Interface || hop.Remote.Port() != 443 {
		t.Errorf("hop %+v", hop)
	}

	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "https://"+tlsName+"/redirect", nil)
	resp, _, err = p.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/final" {
		t.Errorf("redirect: %d %q, want 302 /final returned as is", resp.StatusCode, resp.Header.Get("Location"))
	}

	t.Run("without the test CA", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+tlsName+"/", nil)
		_, _, err := newClient("").Do(req)
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Errorf("error %v, want x509.UnknownAuthorityError", err)
		}
	})
	if sent := bn.eth0Tx(t) - before; sent != 0 {
		t.Errorf("eth0 sent %d packets", sent)
	}
}
