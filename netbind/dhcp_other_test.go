//go:build !linux

package netbind

import (
	"context"
	"errors"
	"testing"
)

func TestDHCPv4StubSaysUnsupported(t *testing.T) {
	if _, err := DHCPv4(context.Background(), "wwan0"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("DHCPv4 in a build without a client: %v, want errors.ErrUnsupported", err)
	}
}
