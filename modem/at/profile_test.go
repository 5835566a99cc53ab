package at_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/at"
	"github.com/simproof/simproof/modem/sim"
)

// wireLog is a slog handler that keeps the commands the backend's trace
// (BackendOptions.Trace) shows it sending.
type wireLog struct {
	mu   sync.Mutex
	sent []string
}

func (w *wireLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *wireLog) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *wireLog) WithGroup(string) slog.Handler            { return w }

func (w *wireLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "at" {
		return nil
	}
	var dir, line string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "dir":
			dir = a.Value.String()
		case "line":
			line = a.Value.String()
		}
		return true
	})
	if dir == ">" {
		w.mu.Lock()
		w.sent = append(w.sent, line)
		w.mu.Unlock()
	}
	return nil
}

// sentSince returns the commands sent from index i on, and the new end.
func (w *wireLog) sentSince(i int) ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.sent[i:]...), len(w.sent)
}

// vendorBench is one simulated vendor modem on a real pty, served by an AT
// backend that opens it with go.bug.st/serial, as on a device.
type vendorBench struct {
	sim  *sim.Modem
	m    modem.Modem
	wire *wireLog
}

// newVendorBench starts the simulator as vendor and a backend port with
// profile ("" = auto) and no net device override, so the profile's own
// interface name shows.
func newVendorBench(t *testing.T, vendor, profile string, setup func(*sim.Modem)) *vendorBench {
	t.Helper()
	s := sim.New(sim.DefaultIdentity(0))
	if err := s.UseVendor(vendor); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(s)
	}
	link := filepath.Join(t.TempDir(), "ttyVENDOR")
	if err := s.ServePTY(link); err != nil {
		t.Fatalf("serve pty: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	wl := &wireLog{}
	b := at.NewBackend(at.BackendOptions{
		Ports:          []at.PortConfig{{Device: link, Simulated: true, Profile: profile}},
		CommandTimeout: 2 * time.Second,
		Trace:          true,
		Log:            slog.New(wl),
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	added := make(chan modem.Info, 1)
	go func() {
		for ev := range b.Events() {
			if ev.Kind == modem.Added {
				select {
				case added <- ev.Info:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("backend did not stop")
		}
	})
	var info modem.Info
	select {
	case info = <-added:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s modem never listed", vendor)
	}
	m, ok := b.Get(info.ID)
	if !ok {
		t.Fatalf("modem %s not served", info.ID)
	}
	return &vendorBench{sim: s, m: m, wire: wl}
}

func staticV4(b sim.BearerConfig) *modem.IPConfig {
	c := &modem.IPConfig{Method: "static", Address: b.IPv4.Addr().String(), Prefix: b.IPv4.Bits(),
		Gateway: b.Gateway4.String(), DNS: []string{}}
	for _, d := range b.DNS4 {
		c.DNS = append(c.DNS, d.String())
	}
	return c
}

var dhcpV4 = &modem.IPConfig{Method: "dhcp", DNS: []string{}}

// Every vendor dialogue, auto-detected from +CGMI/+CGMM: the data call is
// started and stopped with the vendor's own commands, and the DataInfo
// carries the profile's interface and the simulator's bearer.
func TestVendorProfilesConnect(t *testing.T) {
	bearer := sim.DefaultBearer(0)
	tests := []struct {
		vendor     string
		iface      string
		ipv4       *modem.IPConfig
		connect    []string // commands that must have been sent by Connect, in order
		disconnect []string // and by Disconnect
	}{
		{"generic", "wwan0", staticV4(bearer),
			[]string{"AT+CGACT=1,1", "AT+CGCONTRDP=1"}, []string{"AT+CGACT=0,1"}},
		{"quectel-ecm", "usb0", dhcpV4,
			[]string{`AT+QCFG="usbnet"`, "AT+QICSGP=<redacted>", "AT+QNETDEVCTL=1,1,1", "AT+QNETDEVCTL?"},
			[]string{`AT+QCFG="usbnet"`, "AT+QNETDEVCTL=0,1,0", "AT+CGACT=0,1"}},
		{"quectel-qmi", "wwan0", staticV4(bearer),
			[]string{`AT+QCFG="usbnet"`, "AT$QCRMCALL=1,1,1,2,1", "AT$QCRMCALL?", "AT+CGCONTRDP=1"},
			[]string{"AT$QCRMCALL=0,1", "AT+CGACT=0,1"}},
		{"simcom", "wwan0", staticV4(bearer),
			[]string{"AT$QCRMCALL=1,1", "AT$QCRMCALL?", "AT+CGCONTRDP=1"},
			[]string{"AT$QCRMCALL=0,1", "AT+CGACT=0,1"}},
		{"huawei", "wwan0", staticV4(bearer),
			[]string{"AT^NDISDUP=<redacted>", "AT^DHCP?"},
			[]string{"AT^NDISDUP=<redacted>", "AT^NDISSTATQRY?"}},
		{"ublox", "usb0", staticV4(bearer),
			[]string{"AT+UBMCONF?", "AT+CGACT=1,1", "AT+CGCONTRDP=1", "AT+UIPADDR=1"},
			[]string{"AT+UBMCONF?", "AT+CGACT=0,1"}},
		{"ublox-router", "usb0", dhcpV4,
			[]string{"AT+UBMCONF?", "AT+CGACT=1,1"}, []string{"AT+CGACT=0,1"}},
		{"sierra", "wwan0", staticV4(bearer),
			[]string{"AT!SCACT=1,1", "AT!SCACT?", "AT+CGCONTRDP=1"},
			[]string{"AT!SCACT=0,1", "AT!SCACT?"}},
	}
	for _, tt := range tests {
		t.Run(tt.vendor, func(t *testing.T) {
			t.Parallel()
			vb := newVendorBench(t, tt.vendor, "auto", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, mark := vb.wire.sentSince(0)

			d, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			want := modem.DataInfo{Connected: true, Interface: tt.iface, APN: "internet", IPv4: tt.ipv4}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("data %+v (ipv4 %+v ipv6 %+v)\nwant %+v (ipv4 %+v)", d, d.IPv4, d.IPv6, want, want.IPv4)
			}
			if c, ok := vb.sim.Context(1); !ok || !c.Active || c.APN != "internet" {
				t.Errorf("simulator context after connect: %+v", c)
			}
			if got := vb.m.Info(); got.State != "connected" || !reflect.DeepEqual(got.Data, d) {
				t.Errorf("modem after connect: state %s data %+v", got.State, got.Data)
			}
			sent, mark := vb.wire.sentSince(mark)
			requireInOrder(t, "connect", sent, tt.connect)

			if err := vb.m.Disconnect(ctx); err != nil {
				t.Fatalf("disconnect: %v", err)
			}
			if c, _ := vb.sim.Context(1); c.Active {
				t.Error("context still active after disconnect")
			}
			if got := vb.m.Info(); got.Data.Connected || got.State == "connected" {
				t.Errorf("modem after disconnect: state %s data %+v", got.State, got.Data)
			}
			sent, _ = vb.wire.sentSince(mark)
			requireInOrder(t, "disconnect", sent, tt.disconnect)
		})
	}
}

// requireInOrder fails unless want appears in sent as a subsequence.
func requireInOrder(t *testing.T, what string, sent, want []string) {
	t.Helper()
	i := 0
	for _, s := range sent {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("%s sent %q; missing %q (in order %q)", what, sent, want[i], want)
	}
}

// A refused activation fails Connect with an error that names the profile
// and carries the modem's answer; the modem stays disconnected.
func TestVendorActivationFails(t *testing.T) {
	tests := []struct {
		vendor, disable string
		profile         string // the name the error must carry
		want            string // and this text
		cme             bool   // and wrap a *at.CMEError
	}{
		{"generic", "+CGACT", "generic", "AT+CGACT=1,1", true},
		{"quectel-ecm", "+QNETDEVCTL", "quectel-ecm", "AT+QNETDEVCTL=1,1,1", true},
		{"quectel-qmi", "$QCRMCALL", "quectel-qmi", "AT$QCRMCALL=1,1,1,2,1", true},
		{"simcom", "$QCRMCALL", "simcom", "AT$QCRMCALL=1,1", true},
		{"huawei", "^NDISDUP", "huawei", "AT^NDISDUP=<redacted>", true},
		{"ublox", "+CGACT", "ublox", "AT+CGACT=1,1", true},
		{"sierra", "!SCACT", "sierra", "AT!SCACT=1,1", true},
	}
	for _, tt := range tests {
		t.Run(tt.vendor, func(t *testing.T) {
			t.Parallel()
			vb := newVendorBench(t, tt.vendor, "", func(s *sim.Modem) { s.Disable(tt.disable) })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4", User: "u", Password: "s3cret-pw"})
			if err == nil {
				t.Fatal("connect succeeded with the vendor command refused")
			}
			msg := err.Error()
			if !strings.Contains(msg, "("+tt.profile+" profile)") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not name the %s profile and %s", msg, tt.profile, tt.want)
			}
			var cme *at.CMEError
			if tt.cme && !errors.As(err, &cme) {
				t.Errorf("error %v wraps no +CME ERROR", err)
			}
			if strings.Contains(msg, "s3cret-pw") {
				t.Errorf("error %q shows the password", msg)
			}
			if vb.m.Info().Data.Connected {
				t.Error("modem marked connected after a failed activation")
			}
			if c, _ := vb.sim.Context(1); c.Active {
				t.Error("simulator context active after a failed activation")
			}
		})
	}
}

// Huawei accepts ^NDISDUP and reports the network's refusal later, in a
// ^NDISSTAT URC with the 3GPP cause (51: IPv6 only allowed): that ends the
// wait with the cause.
func TestHuaweiRefusedByURC(t *testing.T) {
	t.Parallel()
	vb := newVendorBench(t, "huawei", "", func(s *sim.Modem) {
		b := sim.DefaultBearer(0)
		b.IPv4, b.Gateway4, b.DNS4 = netip.Prefix{}, netip.Addr{}, nil
		b.IPv6 = netip.MustParsePrefix("2001:db8:64:1::2/64")
		s.SetBearer(b)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"})
	if err == nil {
		t.Fatal("connect succeeded on a bearer without IPv4")
	}
	for _, want := range []string{"(huawei profile)", `^NDISSTAT: 0,51,,"IPV4"`, "3GPP cause 51"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v: the URC did not end the wait", err)
	}
}

// Huawei dual stack: IPv4 from ^DHCP, IPv6 from +CGCONTRDP.
func TestHuaweiDualStack(t *testing.T) {
	t.Parallel()
	b := sim.DefaultBearer(0)
	b.IPv6 = netip.MustParsePrefix("2001:db8:64:1::2/64")
	b.Gateway6 = netip.MustParseAddr("2001:db8:64:1::1")
	b.DNS6 = []netip.Addr{netip.MustParseAddr("2001:db8:64:1::53")}
	vb := newVendorBench(t, "huawei", "huawei", func(s *sim.Modem) { s.SetBearer(b) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4v6"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.IPv4, staticV4(b)) {
		t.Errorf("ipv4 %+v, want %+v", d.IPv4, staticV4(b))
	}
	want6 := &modem.IPConfig{Method: "static", Address: "2001:db8:64:1::2", Prefix: 64, Gateway: "2001:db8:64:1::1", DNS: []string{"2001:db8:64:1::53"}}
	if !reflect.DeepEqual(d.IPv6, want6) {
		t.Errorf("ipv6 %+v, want %+v", d.IPv6, want6)
	}
}

// A profile configured by name is checked against the modem's set-up; a
// name nobody knows is refused, never quietly replaced.
func TestConfiguredProfileMismatch(t *testing.T) {
	tests := []struct {
		vendor, profile string
		want            []string
		is              error
	}{
		{"quectel-qmi", "quectel-ecm", []string{"quectel-ecm profile", "usbnet mode 0", "quectel-qmi"}, nil},
		{"quectel-ecm", "quectel-qmi", []string{"quectel-qmi profile", "usbnet mode 1", "quectel-ecm"}, nil},
		{"generic", "nokia", []string{`"nokia"`, "quectel-ecm"}, at.ErrUnknownProfile},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			t.Parallel()
			vb := newVendorBench(t, tt.vendor, tt.profile, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet"})
			if err == nil {
				t.Fatal("connect succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if c, _ := vb.sim.Context(1); c.Active {
				t.Error("a context was activated anyway")
			}
		})
	}
}

// Quectel in MBIM mode: auto-detection names the problem instead of
// starting a call the host cannot use.
func TestQuectelMBIMRefused(t *testing.T) {
	t.Parallel()
	vb := newVendorBench(t, "quectel-ecm", "auto", func(s *sim.Modem) {
		if got := s.Exec(`AT+QCFG="usbnet",2`); got != "OK" {
			t.Fatalf("usbnet 2: %q", got)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet"})
	if err == nil {
		t.Fatal("connect succeeded in MBIM mode")
	}
	for _, w := range []string{"quectel profile", "usbnet mode 2 (MBIM)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// A router-mode modem serves only DHCPv4 to the host: an IPv6-only bearer
// there is refused as unsupported, and the call is taken down again so the
// next connect starts clean.
func TestDHCPProfileNeedsIPv4(t *testing.T) {
	t.Parallel()
	v6only := sim.DefaultBearer(0)
	v6only.IPv4, v6only.Gateway4, v6only.DNS4 = netip.Prefix{}, netip.Addr{}, nil
	v6only.IPv6 = netip.MustParsePrefix("2001:db8:64:1::2/64")
	vb := newVendorBench(t, "quectel-ecm", "", func(s *sim.Modem) { s.SetBearer(v6only) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv6"})
	if !errors.Is(err, modem.ErrUnsupported) || !strings.Contains(err.Error(), "quectel-ecm profile") {
		t.Fatalf("connect: %v, want unsupported_bearer from the quectel-ecm profile", err)
	}
	if c, _ := vb.sim.Context(1); c.Active {
		t.Fatal("the half-made call was left up")
	}
	vb.sim.SetBearer(sim.DefaultBearer(0))
	d, err := vb.m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"})
	if err != nil || !reflect.DeepEqual(d.IPv4, dhcpV4) || d.Interface != "usb0" {
		t.Fatalf("connect after the refusal: %+v, %v", d, err)
	}
}
