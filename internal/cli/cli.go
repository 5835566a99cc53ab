package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/sim"
)

// Env is what a command needs from its surroundings, so tests run it
// in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

type command struct {
	name, args, help string
	run              func(ctx context.Context, env Env, g *globals, args []string) int
}

// globals are flags every command takes, before or after its name.
type globals struct {
	socket string
	json   bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.socket, "socket", g.socket, "path of simproofd's socket")
	fs.BoolVar(&g.json, "json", g.json, "print JSON for scripts")
}

var commands []command

func init() {
	// Prepend: other files' init functions may already have added theirs
	// (init order follows file names).
	commands = append([]command{
		{"health", "", "show the daemon's health", cmdHealth},
		{"modems", "", "list modems", cmdModems},
		{"modem", "ID", "show one modem (id, imei:…, iccid:…)", cmdModem},
		{"demo", "", "run the whole job on simulated modems and emulated providers", cmdDemo},
		{"sim", "[--count N] [--dir DIR] …", "run simulated modems on pseudo-terminals (sim --help)", cmdSim},
	}, commands...)
}

// Main runs the command line and returns the exit status.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	g := &globals{socket: DefaultSocket}
	if s := env.Getenv("SIMPROOF_SOCKET"); s != "" {
		g.socket = s
	}
	fs := flag.NewFlagSet("simproof", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	g.register(fs)
	fs.Usage = func() { usage(env.Stderr) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		usage(env.Stderr)
		return ExitUsage
	}
	for _, c := range commands {
		if c.name == rest[0] {
			return c.run(ctx, env, g, rest[1:])
		}
	}
	fmt.Fprintf(env.Stderr, "simproof: unknown command %q\n", rest[0])
	usage(env.Stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: simproof [--socket PATH] [--json] COMMAND [ARGS]")
	fmt.Fprintln(w, "commands:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.help)
	}
	tw.Flush()
	fmt.Fprintln(w, "exit status: 0 success (verified), 1 not verified, 2 usage error, 3 failed or daemon error")
}

// parse parses a command's own flags (the globals included) and checks the
// number of positional arguments.
func parse(env Env, g *globals, name string, args []string, nargs int, setup func(*flag.FlagSet)) ([]string, bool) {
	fs := flag.NewFlagSet("simproof "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	g.register(fs)
	if setup != nil {
		setup(fs)
	}
	// Accept flags after positional arguments too (simproof modem ID --json).
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if nargs >= 0 && len(pos) != nargs {
		fmt.Fprintf(env.Stderr, "simproof %s: want %d argument(s), got %d\n", name, nargs, len(pos))
		return nil, false
	}
	return pos, true
}

// fail prints an error and returns the exit status for it.
func fail(env Env, err error) int {
	fmt.Fprintf(env.Stderr, "simproof: %v\n", err)
	return ExitFailed
}

func printRaw(env Env, raw []byte) {
	env.Stdout.Write(raw)
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		fmt.Fprintln(env.Stdout)
	}
}

func cmdHealth(ctx context.Context, env Env, g *globals, args []string) int {
	if _, ok := parse(env, g, "health", args, 0, nil); !ok {
		return ExitUsage
	}
	var h agent.Health
	raw, err := NewClient(g.socket).Do(ctx, "GET", "/v1/health", nil, &h)
	if err != nil {
		return fail(env, err)
	}
	if g.json {
		printRaw(env, raw)
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "status:  %s\nversion: %s\nuptime:  %s\nmodems:  %d\n", h.Status, h.Version,
		time.Duration(h.UptimeSeconds)*time.Second, h.Modems)
	for _, b := range h.Backends {
		line := fmt.Sprintf("backend: %s %s", b.Name, b.State)
		if b.Error != "" {
			line += " (" + b.Error + ")"
		}
		fmt.Fprintln(env.Stdout, line)
	}
	return ExitOK
}

func cmdModems(ctx context.Context, env Env, g *globals, args []string) int {
	if _, ok := parse(env, g, "modems", args, 0, nil); !ok {
		return ExitUsage
	}
	var list agent.ModemList
	raw, err := NewClient(g.socket).Do(ctx, "GET", "/v1/modems", nil, &list)
	if err != nil {
		return fail(env, err)
	}
	if g.json {
		printRaw(env, raw)
		return ExitOK
	}
	printModemTable(env.Stdout, list.Modems)
	return ExitOK
}

func printModemTable(w io.Writer, ms []modem.Info) {
	if len(ms) == 0 {
		fmt.Fprintln(w, "no modems")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tOPERATOR\tTECH\tSIGNAL\tIMEI\tICCID\tIMSI\tDATA")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.State), operator(m),
			orDash(m.AccessTechnology), signal(m.SignalQuality), orDash(m.IMEI), orDash(m.SIM.ICCID),
			orDash(m.SIM.IMSI), data(m.Data))
	}
	tw.Flush()
}

func operator(m modem.Info) string {
	switch {
	case m.Network.OperatorName != "" && m.Network.OperatorID != "":
		return fmt.Sprintf("%s (%s)", m.Network.OperatorName, m.Network.OperatorID)
	case m.Network.OperatorName != "":
		return m.Network.OperatorName
	case m.Network.OperatorID != "":
		return m.Network.OperatorID
	}
	return orDash(m.SIM.OperatorName)
}

func signal(q *int) string {
	if q == nil {
		return "-"
	}
	return fmt.Sprintf("%d%%", *q)
}

func data(d modem.DataInfo) string {
	if !d.Connected {
		return "down"
	}
	s := "up " + d.Interface
	if d.IPv4 != nil {
		s += fmt.Sprintf(" %s/%d", d.IPv4.Address, d.IPv4.Prefix)
	}
	if d.IPv6 != nil {
		s += fmt.Sprintf(" %s/%d", d.IPv6.Address, d.IPv6.Prefix)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdModem(ctx context.Context, env Env, g *globals, args []string) int {
	pos, ok := parse(env, g, "modem", args, 1, nil)
	if !ok {
		return ExitUsage
	}
	var m modem.Info
	raw, err := NewClient(g.socket).Do(ctx, "GET", "/v1/modems/"+pos[0], nil, &m)
	if err != nil {
		return fail(env, err)
	}
	if g.json {
		printRaw(env, raw)
		return ExitOK
	}
	printModem(env.Stdout, m)
	return ExitOK
}

func printModem(w io.Writer, m modem.Info) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, orDash(v)) }
	row("id", m.ID)
	row("backend", m.Backend+map[bool]string{true: " (simulated)", false: ""}[m.Simulated])
	st := m.State
	if m.StateReason != "" {
		st += " (" + m.StateReason + ")"
	}
	row("state", st)
	row("manufacturer", m.Manufacturer)
	row("model", m.Model)
	row("revision", m.Revision)
	row("imei", m.IMEI)
	row("port", m.Port)
	row("sim state", m.SIM.State)
	row("iccid", m.SIM.ICCID)
	row("imsi", m.SIM.IMSI)
	row("home operator", strings.TrimSpace(m.SIM.OperatorName+" "+m.SIM.OperatorID))
	row("own numbers", strings.Join(m.SIM.OwnNumbers, ", "))
	row("network", operator(m))
	row("registration", m.Registration)
	row("technology", m.AccessTechnology)
	row("signal", signal(m.SignalQuality))
	row("data", data(m.Data))
	if d := m.Data.IPv4; d != nil && m.Data.Connected {
		row("ipv4 gateway", d.Gateway)
		row("ipv4 dns", strings.Join(d.DNS, ", "))
	}
	row("busy", fmt.Sprint(m.Busy))
	tw.Flush()
}

func cmdSim(ctx context.Context, env Env, g *globals, args []string) int {
	return sim.Main(ctx, args, env.Stdout, env.Stderr)
}
