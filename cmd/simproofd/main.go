// Command simproofd is the simproof daemon: flags, configuration, logging,
// then agent.Run until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simproofd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "configuration file")
	check := fs.Bool("check-config", false, "validate the configuration and exit (0 valid, 2 invalid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "simproofd", version.Version)
		return 0
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "simproofd: invalid configuration:\n%v\n", err)
		return 2
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration is valid\n", *path)
		return 0
	}
	log, err := agent.NewLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "simproofd: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx, cfg, log); err != nil {
		log.Error("simproofd stopped", "err", err)
		return 1
	}
	return 0
}
