package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the bench's knobs; the defaults keep `make bench` under
// fifteen minutes on two cores.
type options struct {
	out        string
	reps       int           // warm repetitions per latency series
	cold       int           // cold samples per provider
	arrayReps  int           // rounds per modem-array size
	idle       time.Duration // idle CPU window
	apiFor     time.Duration // socket API load duration
	apiClients int
	wwanDelay  time.Duration // one way, device ⇄ carrier
	ethDelay   time.Duration // one way, device ⇄ ISP (provider API path)
	command    string        // what to print as "the command" in the report
}

func mainArgs(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "delayline" {
		return runDelayLine(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "where to write the report")
	fs.IntVar(&o.reps, "reps", 30, "repetitions of each warm latency series")
	fs.IntVar(&o.cold, "cold", 10, "cold samples per provider (a fresh modem and fresh provider clients each)")
	fs.IntVar(&o.arrayReps, "array-reps", 9, "rounds per modem-array size")
	fs.DurationVar(&o.idle, "idle", 60*time.Second, "idle window for the CPU measurement")
	fs.DurationVar(&o.apiFor, "api-for", 10*time.Second, "socket API load duration")
	fs.IntVar(&o.apiClients, "api-clients", 64, "concurrent socket API clients")
	fs.DurationVar(&o.wwanDelay, "wwan-delay", 30*time.Millisecond, "one-way delay device ⇄ carrier")
	fs.DurationVar(&o.ethDelay, "eth-delay", 10*time.Millisecond, "one-way delay device ⇄ ISP")
	fs.StringVar(&o.command, "command", "", "the command line to record in the report (default: how this was started)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "bench: needs root: it creates network namespaces, veth links and AF_PACKET sockets for the delay line.\n"+
			"Run it as root: sudo make bench (or sudo go run ./bench).")
		return 2
	}
	if o.command == "" {
		o.command = strings.TrimSpace("go run ./bench " + quoteArgs(args))
	}
	// A closed stdout or stderr (`| head`) must not kill the bench before
	// it removes its namespaces.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, o, stderr); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

// quoteArgs renders args for a shell, quoting only what needs it.
func quoteArgs(args []string) string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
		}) < 0 {
			out = append(out, a)
			continue
		}
		out = append(out, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return strings.Join(out, " ")
}
