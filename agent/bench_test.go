package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/netbind"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/emulator"
	"github.com/simproof/simproof/verify/idlayr"
	"github.com/simproof/simproof/verify/plasgate"
)

// loModem is a connected modem whose bearer is lo with its own address, as
// the demo's simulated modems are.
type loModem struct{ fakeModem }

func (m *loModem) Connect(context.Context, modem.ConnectParams) (modem.DataInfo, error) {
	return modem.DataInfo{Connected: true, Interface: "lo", IPv4: &modem.IPConfig{Method: "static",
		Address: "127.100.0.1", Prefix: 32, DNS: []string{}}}, nil
}

// BenchmarkCheck runs whole checks through the daemon core — socket API,
// validation, journal (fsync), scheduler, pinned client, provider flow —
// against the emulator on loopback, and splits each check's time into the
// emulator's (request handling it reports) and everything else (the agent's
// own time, with the kernel's loopback and the HTTP client included).
func BenchmarkCheck(b *testing.B) {
	for _, provider := range []string{"idlayr", "plasgate"} {
		b.Run(provider, func(b *testing.B) {
			emu, err := emulator.StartLoopback(emulator.Config{
				Subscribers: map[netip.Addr]string{netip.MustParseAddr("127.100.0.1"): "447700900000"}})
			if err != nil {
				b.Fatal(err)
			}
			defer emu.Close()
			server := verify.NewServerClient(emu.CertPool())
			idp, _ := idlayr.New(idlayr.Config{Credentials: idlayr.Credentials{ClientID: emulator.DefaultClientID,
				ClientSecret: emulator.DefaultClientSecret, DataResidency: "eu"}, BaseURL: emu.BaseURL(emulator.RoleIDlayr),
				HTTPClient: server, PollInterval: time.Millisecond})
			pgp, _ := plasgate.New(plasgate.Config{BaseURL: emu.BaseURL(emulator.RolePlasGate), PrivateKey: emulator.DefaultPlasGatePrivateKey,
				Secret: emulator.DefaultPlasGateSecret, RedirectURI: "https://app.example.test/cb", HTTPClient: server})
			pinner := NewNetPinner(netbind.NewBinder(netbind.Options{}), netbind.ManageNever, netbind.ClientOptions{RootCAs: emu.CertPool()})
			pinner.loopback = true
			dir := b.TempDir()
			cfg := config.Default()
			cfg.StateDir = dir
			reg := &fixedBackend{m: &loModem{fakeModem{info: modem.Info{ID: "356938035643809", IMEI: "356938035643809"}}}}
			d := &Daemon{Config: cfg, Backends: map[string]RunningBackend{"fixed": reg},
				Providers: map[string]verify.Provider{"idlayr": idp, "plasgate": pgp}, Pinner: pinner}
			sock := filepath.Join(dir, "s.sock")
			l, err := ListenUnix(sock, 0o600, -1)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { d.Serve(ctx, l); close(done) }()
			defer func() { cancel(); <-done }()
			c := unixClient(sock)
			body, _ := json.Marshal(CheckRequest{Provider: provider, PhoneNumber: "+447700900000", Modem: "356938035643809"})
			run := func() {
				resp, err := c.Post("http://simproof/v1/checks?wait=30s", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				var chk Check
				json.NewDecoder(resp.Body).Decode(&chk)
				resp.Body.Close()
				if chk.Status != StatusCompleted || chk.Result == nil || chk.Result.Verified == nil || !*chk.Result.Verified {
					if errors := chk.Error; errors != nil && errors.Code == "no_bearer" {
						b.Skip("cannot pin to lo here")
					}
					b.Fatalf("check %+v %+v", chk, chk.Error)
				}
			}
			if _, err := (net0{}).probe(); err != nil {
				b.Skip(err)
			}
			for waited := 0; len(d.Backends) > 0 && waited < 100; waited++ {
				var list ModemList
				resp, err := c.Get("http://simproof/v1/modems")
				if err == nil {
					json.NewDecoder(resp.Body).Decode(&list)
					resp.Body.Close()
					if len(list.Modems) == 1 {
						break
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			run() // warm: token, TLS sessions, connections
			emu.ResetObservations()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				run()
			}
			total := time.Since(start)
			b.StopTimer()
			var emuTime time.Duration
			for _, r := range emu.Requests() {
				emuTime += r.FinishedAt.Sub(r.StartedAt)
			}
			b.ReportMetric(float64(emuTime.Nanoseconds())/float64(b.N), "emulator-ns/check")
			b.ReportMetric(float64((total-emuTime).Nanoseconds())/float64(b.N), "agent-ns/check")
			b.ReportMetric(float64(len(emu.Requests()))/float64(b.N), "requests/check")
		})
	}
}

// fixedBackend serves one modem that never changes.
type fixedBackend struct{ m modem.Modem }

func (f *fixedBackend) Events() <-chan modem.Event {
	ch := make(chan modem.Event, 1)
	ch <- modem.Event{Kind: modem.Added, Info: f.m.Info()}
	return ch
}
func (f *fixedBackend) Get(string) (modem.Modem, bool) { return f.m, true }
func (f *fixedBackend) Run(ctx context.Context)        { <-ctx.Done() }
func (f *fixedBackend) Status() (string, string)       { return "running", "" }

// net0 checks that an unprivileged SO_BINDTODEVICE is possible (Linux 5.7+).
type net0 struct{}

func (net0) probe() (bool, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return false, err
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptString(fd, syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "lo"); err != nil {
		return false, err
	}
	return true, nil
}
