package nstest_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simproof/simproof/internal/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func hostLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("host links: %v", err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

func TestNamespacesAreRemovedAndHostUntouched(t *testing.T) {
	nstest.RequireRoot(t)
	before := hostLinks(t)
	var names []string
	t.Run("build", func(t *testing.T) {
		tp := nstest.NewTopology(t, nstest.Options{Modems: 2})
		for _, ns := range []*nstest.NS{tp.Device, tp.Carrier, tp.ISP, tp.Server} {
			if !strings.HasPrefix(ns.Name, "sp-") {
				t.Errorf("namespace %q lacks the sp- prefix", ns.Name)
			}
			if _, err := os.Stat(ns.Path()); err != nil {
				t.Errorf("namespace file: %v", err)
			}
			names = append(names, ns.Name)
		}
		if got := hostLinks(t); !slices.Equal(got, before) {
			t.Errorf("host links changed while building: %v, was %v", got, before)
		}
	})
	if len(names) != 4 {
		t.Fatalf("built %d namespaces, want 4", len(names))
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join("/run/netns", n)); !os.IsNotExist(err) {
			t.Errorf("namespace %s still present after cleanup (stat: %v)", n, err)
		}
	}
	if got := hostLinks(t); !slices.Equal(got, before) {
		t.Errorf("host links changed: %v, was %v", got, before)
	}
}

// get fetches url from inside ns, with sockets bound to bindTo if set.
func get(t *testing.T, ns *nstest.NS, bindTo, url string) (string, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 3 * time.Second}
	if bindTo != "" {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.BindToDevice(int(fd), bindTo)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil, DialContext: ns.DialContext(d)}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return string(b), err
}

func TestTopologyPaths(t *testing.T) {
	tp := nstest.NewTopology(t, nstest.Options{Modems: 2, ConfigureModems: true})
	tp.StartEcho(t)
	m := tp.Modems[1]
	for _, tc := range []struct {
		name, bind, url, want string
		viaEth0               bool
	}{
		// Bound rows first: a connection through eth0 keeps sending (FIN,
		// ACK) after its response, which later rows would count.
		{"bound to wwan1 v4", m.Interface, "http://192.0.2.80/", m.Addr4.Addr().String(), false},
		{"bound to wwan1 v6", m.Interface, "http://[2001:db8:5::80]/", m.Addr6.Addr().String(), false},
		{"default route v4", "", "http://192.0.2.80/", "203.0.113.2", true},
		{"default route v6", "", "http://[2001:db8:5::80]/", "2001:db8:e::2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tp.Device.TxPackets(t, tp.Eth0)
			got, err := get(t, tp.Device, tc.bind, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("server saw %q, want %q", got, tc.want)
			}
			sent := tp.Device.TxPackets(t, tp.Eth0) - before
			if tc.viaEth0 && sent == 0 {
				t.Errorf("eth0 counted no packets for a request through it")
			}
			if !tc.viaEth0 && sent != 0 {
				t.Errorf("eth0 sent %d packets during a request bound to %s", sent, tc.bind)
			}
		})
	}
}

func TestDNSAndCommand(t *testing.T) {
	tp := nstest.NewTopology(t, nstest.Options{})
	want := netip.MustParseAddr("192.0.2.7")
	dns := nstest.StartDNS(t, tp.Carrier,
		map[string][]netip.Addr{"Host.Example.Test": {want, netip.MustParseAddr("2001:db8::7")}},
		net.JoinHostPort(tp.CarrierDNS4.String(), "53"))

	dial := tp.Device.DialContext(&net.Dialer{})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dial(ctx, network, dns.Addrs[0].String())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := r.LookupNetIP(ctx, "ip4", "host.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []netip.Addr{want}) {
		t.Errorf("lookup = %v, want [%v]", got, want)
	}
	if dns.Queries() == 0 {
		t.Errorf("server counted no queries")
	}

	out, err := tp.Device.Command(ctx, "ip", "-o", "addr", "show", "dev", tp.Eth0).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec: %v: %s", err, out)
	}
	if !strings.Contains(string(out), tp.Eth0Addr4.String()) {
		t.Errorf("eth0 in %s shows %q, want %s", tp.Device.Name, out, tp.Eth0Addr4)
	}
}
