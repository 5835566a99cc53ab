//go:build !linux

package agent

import (
	"errors"
	"net"
)

func peerCred(net.Conn) (*Peer, error) { return nil, errors.New("peer credentials need Linux") }
