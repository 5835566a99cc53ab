//go:build !linux

package netbind

import (
	"context"
	"errors"
	"net"
)

type pinSys struct{}

func (p *Pinned) initSys(ClientOptions) error {
	return errors.Join(errors.ErrUnsupported, errors.New("interface pinning (SO_BINDTODEVICE) needs Linux"))
}

func (p *Pinned) closeSys() error { return nil }

func (p *Pinned) bearer() (family, error) { return 0, errors.ErrUnsupported }

func (p *Pinned) dialSocket(context.Context, string, string) (net.Conn, error) {
	return nil, errors.ErrUnsupported
}

func boundDevice(net.Conn) string { return "" }
