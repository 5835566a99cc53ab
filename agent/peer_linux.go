package agent

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCred reads the connecting process's credentials: SO_PEERCRED gives its
// uid and primary gid, SO_PEERGROUPS its supplementary groups (SO_PEERCRED
// alone would refuse a user admitted by a secondary group).
func peerCred(c net.Conn) (*Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var p *Peer
	var serr error
	err = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			serr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		p = &Peer{PID: int(cred.Pid), UID: int(cred.Uid), GIDs: []int{int(cred.Gid)}}
		groups, err := peerGroups(int(fd))
		if err != nil {
			serr = fmt.Errorf("SO_PEERGROUPS: %w", err)
			return
		}
		p.GIDs = append(p.GIDs, groups...)
	})
	if err != nil {
		return nil, err
	}
	return p, serr
}

func peerGroups(fd int) ([]int, error) {
	n := 32
	for tries := 0; tries < 4; tries++ {
		buf := make([]uint32, n)
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno == unix.ERANGE {
			n = int(size/4) + 1
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		out := make([]int, 0, size/4)
		for _, g := range buf[:size/4] {
			out = append(out, int(g))
		}
		return out, nil
	}
	return nil, errors.New("group list keeps growing")
}
