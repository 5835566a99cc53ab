//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

func runDelayLine(_ []string, _, stderr io.Writer) int {
	io.WriteString(stderr, "bench delayline: Linux only\n")
	return 2
}

func run(context.Context, options, io.Writer) error {
	return errors.New("the bench needs Linux: network namespaces, veths and AF_PACKET sockets")
}
