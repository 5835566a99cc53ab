// Command simproof-emulator runs the IDlayr, PlasGate and operator emulator
// (package verify/emulator) as a standalone process, for the demo and for
// poking at the providers' flows by hand. It prints the base URLs and writes
// the test CA the agent must be told to trust (tls.ca_file).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/simproof/simproof/verify/emulator"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type options struct {
	listen map[emulator.Role]string
	caOut  string
	cfg    emulator.Config
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "simproof-emulator:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simproof-emulator:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	fs := flag.NewFlagSet("simproof-emulator", flag.ContinueOnError)
	fs.SetOutput(errOut)
	var (
		subs, cidrs, names                           listFlag
		secretFile, pgKeyFile, pgSecretFile          string
		opts                                         = options{listen: map[emulator.Role]string{}}
		idlayrListen, plasgateListen, operatorListen string
	)
	fs.StringVar(&idlayrListen, "idlayr-listen", "127.0.0.1:8443", "IDlayr API listen address (HTTPS)")
	fs.StringVar(&plasgateListen, "plasgate-listen", "127.0.0.1:8444", "PlasGate API listen address (HTTPS)")
	fs.StringVar(&operatorListen, "operator-listen", "127.0.0.1:8080", "operator listen address (plain HTTP)")
	fs.StringVar(&opts.cfg.IDlayrURL, "idlayr-url", "", "public IDlayr base URL (default: the listen address)")
	fs.StringVar(&opts.cfg.PlasGateURL, "plasgate-url", "", "public PlasGate base URL (default: the listen address)")
	fs.StringVar(&opts.cfg.OperatorURL, "operator-url", "", "public operator base URL (default: the listen address)")
	fs.Var(&subs, "subscriber", "ADDR=MSISDN: the operator names this source address (repeatable; default 127.0.0.1=447700900123)")
	fs.Var(&cidrs, "mobile-cidr", "a mobile address range of the operator (repeatable)")
	fs.Var(&names, "dns-name", "an extra DNS name for the certificate (repeatable)")
	fs.StringVar(&opts.cfg.ClientID, "client-id", emulator.DefaultClientID, "IDlayr client_id")
	fs.StringVar(&secretFile, "client-secret-file", "", "file holding the IDlayr client_secret (default: the package default)")
	fs.StringVar(&pgKeyFile, "plasgate-private-key-file", "", "file holding the PlasGate private_key (default: the package default)")
	fs.StringVar(&pgSecretFile, "plasgate-secret-file", "", "file holding the PlasGate X-Secret (default: the package default)")
	fs.StringVar(&opts.caOut, "ca-out", "simproof-emulator-ca.pem", "where to write the test CA certificate")
	fs.DurationVar(&opts.cfg.CheckTTL, "check-ttl", emulator.DefaultCheckTTL, "IDlayr check ttl")
	fs.BoolVar(&opts.cfg.DisableSandbox, "no-sandbox", false, "turn off the IDlayr sandbox number rules")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts.listen[emulator.RoleIDlayr] = idlayrListen
	opts.listen[emulator.RolePlasGate] = plasgateListen
	opts.listen[emulator.RoleOperator] = operatorListen
	opts.cfg.DNSNames = names
	if len(subs) > 0 {
		opts.cfg.Subscribers = map[netip.Addr]string{}
	}
	for _, s := range subs {
		a, m, ok := strings.Cut(s, "=")
		addr, err := netip.ParseAddr(a)
		m = strings.TrimPrefix(m, "+")
		if !ok || err != nil || m == "" || strings.Trim(m, "0123456789") != "" {
			return opts, fmt.Errorf("-subscriber %q: want ADDR=MSISDN (digits)", s)
		}
		opts.cfg.Subscribers[addr] = m
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return opts, fmt.Errorf("-mobile-cidr: %w", err)
		}
		opts.cfg.MobileRanges = append(opts.cfg.MobileRanges, p.Masked())
	}
	if len(opts.cfg.Subscribers) == 0 && len(opts.cfg.MobileRanges) == 0 {
		opts.cfg.Subscribers = map[netip.Addr]string{netip.MustParseAddr("127.0.0.1"): "447700900123"}
	}
	for _, f := range []struct {
		path string
		dst  *string
	}{{secretFile, &opts.cfg.ClientSecret}, {pgKeyFile, &opts.cfg.PlasGatePrivateKey}, {pgSecretFile, &opts.cfg.PlasGateSecret}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return opts, fmt.Errorf("read secret: %w", err)
		}
		if *f.dst = strings.TrimSpace(string(b)); *f.dst == "" {
			return opts, fmt.Errorf("secret file %s is empty", f.path)
		}
	}
	return opts, nil
}

func run(ctx context.Context, opts options, out io.Writer) error {
	e, err := emulator.New(opts.cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	for _, r := range []emulator.Role{emulator.RoleIDlayr, emulator.RolePlasGate, emulator.RoleOperator} {
		l, err := net.Listen("tcp", opts.listen[r])
		if err != nil {
			return fmt.Errorf("listen for %s: %w", r, err)
		}
		if err := e.Serve(r, l, r != emulator.RoleOperator); err != nil {
			l.Close()
			return err
		}
	}
	if err := e.WriteCA(opts.caOut); err != nil {
		return err
	}
	fmt.Fprintf(out, "idlayr   %s\nplasgate %s\noperator %s\nca       %s\nclient_id %s (secrets: flags' files or the package defaults)\n",
		e.BaseURL(emulator.RoleIDlayr), e.BaseURL(emulator.RolePlasGate), e.BaseURL(emulator.RoleOperator), opts.caOut, opts.cfg.ClientID)
	<-ctx.Done()
	return nil // a cancelled context is a clean exit; Close runs deferred
}
