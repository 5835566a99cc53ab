// Command simproof is the command-line client of simproofd's socket API.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/simproof/simproof/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
