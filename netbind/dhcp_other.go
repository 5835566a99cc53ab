//go:build !linux

package netbind

import (
	"context"
	"errors"
	"fmt"

	"github.com/simproof/simproof/modem"
)

// DHCPv4 would ask the modem's DHCPv4 server for the bearer's IPv4
// configuration; the client (raw packet sockets) exists on Linux only.
func DHCPv4(ctx context.Context, ifname string) (*modem.IPConfig, error) {
	return nil, fmt.Errorf("dhcp on %s: %w: this build has no DHCPv4 client", ifname, errors.ErrUnsupported)
}

// DHCPv4 needs Linux.
func (b *Binder) DHCPv4(ctx context.Context, ifname string) (*modem.IPConfig, error) {
	return DHCPv4(ctx, ifname)
}
