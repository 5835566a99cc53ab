package sim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Main is `simproof sim`: it starts simulated modems on ptys (links
// DIR/ttySIM0 …), optionally on abstract sockets too, prints each link and
// identity, and runs until ctx is cancelled. args are the arguments after
// "sim". It returns the exit status: 0 after ctx ends, 1 when a modem
// cannot start, 2 for bad usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "simproof sim: %v\n", err)
		return 2
	}
	if err := runSims(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "simproof sim: %v\n", err)
		return 1
	}
	return 0
}

type simConfig struct {
	count     int
	dir       string
	abstracts []string
	imei      string
	iccid     string
	msisdn    string
	operator  string
	signal    int
	vendor    string
	faults    Faults
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, stderr io.Writer) (simConfig, error) {
	var cfg simConfig
	var abstracts, faults listFlag
	fs := flag.NewFlagSet("simproof sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.count, "count", 1, "number of modems")
	fs.StringVar(&cfg.dir, "dir", filepath.Join(os.TempDir(), "simproof-sim"), "directory of the pty links ttySIM0 …")
	fs.Var(&abstracts, "abstract", "also listen on this abstract socket (e.g. abstract:sim0); %d or, with --count > 1, a suffix is the modem's index; repeat for more ports")
	fs.StringVar(&cfg.imei, "imei", "", "IMEI of the modem (--count 1 only)")
	fs.StringVar(&cfg.iccid, "iccid", "", "ICCID of the SIM (--count 1 only)")
	fs.StringVar(&cfg.msisdn, "msisdn", "", "own number, E.164 with + (--count 1 only)")
	fs.StringVar(&cfg.operator, "operator", "", `serving operator "MCCMNC" or "MCCMNC,Name" (every modem)`)
	fs.IntVar(&cfg.signal, "signal", -1, "+CSQ rssi 0..31 or 99 (every modem)")
	fs.StringVar(&cfg.vendor, "vendor", "", "vendor dialogue: "+strings.Join(Vendors(), ", ")+" (every modem)")
	fs.Var(&faults, "fault", "no-sim | pin | puk | not-registered | denied | silent | slow=DUR | garbage[=N]; repeatable")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.abstracts = abstracts
	switch {
	case cfg.count < 1 || cfg.count > 1000:
		return cfg, fmt.Errorf("--count %d: want 1..1000", cfg.count)
	case cfg.count > 1 && (cfg.imei != "" || cfg.iccid != "" || cfg.msisdn != ""):
		return cfg, errors.New("--imei, --iccid and --msisdn need --count 1")
	case cfg.imei != "" && !digits(cfg.imei, 15, 15):
		return cfg, fmt.Errorf("--imei %q: want 15 digits", cfg.imei)
	case cfg.iccid != "" && !digits(cfg.iccid, 18, 20):
		return cfg, fmt.Errorf("--iccid %q: want 18 to 20 digits", cfg.iccid)
	case cfg.msisdn != "" && !(strings.HasPrefix(cfg.msisdn, "+") && digits(cfg.msisdn[1:], 6, 15)):
		return cfg, fmt.Errorf("--msisdn %q: want E.164 with +", cfg.msisdn)
	case cfg.signal != -1 && cfg.signal != 99 && (cfg.signal < 0 || cfg.signal > 31):
		return cfg, fmt.Errorf("--signal %d: want 0..31 or 99", cfg.signal)
	}
	if cfg.operator != "" {
		id, _, _ := strings.Cut(cfg.operator, ",")
		if !digits(id, 5, 6) {
			return cfg, fmt.Errorf("--operator %q: want MCCMNC[,Name]", cfg.operator)
		}
	}
	for _, f := range faults {
		if err := cfg.faults.set(f); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func digits(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func (f *Faults) set(v string) error {
	name, arg, hasArg := strings.Cut(v, "=")
	switch name {
	case "no-sim":
		f.NoSIM = true
	case "pin":
		f.PINRequired = true
	case "puk":
		f.PUKRequired = true
	case "not-registered":
		f.NotRegistered = true
	case "denied":
		f.Denied = true
	case "silent":
		f.Silent = true
	case "slow":
		d, err := time.ParseDuration(arg)
		if err != nil || d < 0 {
			return fmt.Errorf("--fault %s: want slow=DURATION", v)
		}
		f.Delay = d
	case "garbage":
		f.GarbageEvery = 3
		if hasArg {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 {
				return fmt.Errorf("--fault %s: want garbage=N, N >= 1", v)
			}
			f.GarbageEvery = n
		}
	default:
		return fmt.Errorf("--fault %q: unknown", v)
	}
	return nil
}

// abstractName is template for modem i of count.
func abstractName(template string, i, count int) string {
	if strings.Contains(template, "%d") {
		return strings.ReplaceAll(template, "%d", strconv.Itoa(i))
	}
	if count > 1 {
		return template + strconv.Itoa(i)
	}
	return template
}

func runSims(ctx context.Context, cfg simConfig, stdout io.Writer) error {
	var modems []*Modem
	defer func() {
		for _, m := range modems {
			m.Close()
		}
	}()
	for i := 0; i < cfg.count; i++ {
		id := DefaultIdentity(i)
		if cfg.imei != "" {
			id.IMEI = cfg.imei
		}
		if cfg.iccid != "" {
			id.ICCID = cfg.iccid
		}
		if cfg.msisdn != "" {
			id.MSISDN = cfg.msisdn
		}
		if cfg.operator != "" {
			opID, name, ok := strings.Cut(cfg.operator, ",")
			id.OperatorID = opID
			if ok {
				id.OperatorName = name
			}
		}
		if cfg.signal >= 0 {
			id.RSSI = cfg.signal
		}
		m := New(id)
		if cfg.vendor != "" {
			if err := m.UseVendor(cfg.vendor); err != nil {
				return err
			}
		}
		m.SetBearer(DefaultBearer(i))
		m.SetFaults(cfg.faults)
		modems = append(modems, m)

		link := filepath.Join(cfg.dir, "ttySIM"+strconv.Itoa(i))
		if err := m.ServePTY(link); err != nil {
			return fmt.Errorf("modem %d: %w", i, err)
		}
		ports := []string{link}
		for _, a := range cfg.abstracts {
			name := abstractName(a, i, cfg.count)
			if err := m.ListenAbstract(name); err != nil {
				return fmt.Errorf("modem %d: %w", i, err)
			}
			ports = append(ports, name)
		}
		fmt.Fprintf(stdout, "sim%d %s imei=%s iccid=%s imsi=%s msisdn=%s operator=%s %q\n",
			i, strings.Join(ports, " "), id.IMEI, id.ICCID, id.IMSI, id.MSISDN, id.OperatorID, id.OperatorName)
	}
	fmt.Fprintf(stdout, "ready: %d modem(s); interrupt to stop\n", cfg.count)
	<-ctx.Done()
	return nil
}
