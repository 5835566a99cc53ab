package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
)

// Peer is the process at the other end of an API connection.
type Peer struct {
	PID  int
	UID  int
	GIDs []int // primary first, then supplementary
}

type peerKey struct{}

// withPeer is http.Server.ConnContext: it reads the peer's credentials once
// per connection. A connection whose credentials cannot be read carries an
// error and is refused by the policy.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	p, err := peerCred(c)
	if err != nil {
		return context.WithValue(ctx, peerKey{}, peerResult{err: err})
	}
	return context.WithValue(ctx, peerKey{}, peerResult{peer: p})
}

type peerResult struct {
	peer *Peer
	err  error
}

// PeerPolicy decides who may use the API: root, the daemon's own user and
// group (whom the socket's owner and group admit), and the configured uids
// and gids. Everyone else gets 403.
type PeerPolicy struct {
	UIDs, GIDs []int
	// Off skips the check (tests that serve on plain listeners).
	Off bool
}

// NewPeerPolicy allows the configured ids plus root and the daemon's own
// uid and gid.
func NewPeerPolicy(uids, gids []int) *PeerPolicy {
	return &PeerPolicy{UIDs: append([]int{0, os.Getuid()}, uids...), GIDs: append([]int{os.Getgid()}, gids...)}
}

// Allow reports whether r's peer may use the API, and why not.
func (p *PeerPolicy) Allow(r *http.Request) (bool, string) {
	if p == nil || p.Off {
		return true, ""
	}
	pr, _ := r.Context().Value(peerKey{}).(peerResult)
	if pr.err != nil || pr.peer == nil {
		return false, fmt.Sprintf("the peer's credentials cannot be read: %v", pr.err)
	}
	if slices.Contains(p.UIDs, pr.peer.UID) {
		return true, ""
	}
	for _, g := range pr.peer.GIDs {
		if slices.Contains(p.GIDs, g) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("uid %d (pid %d) is not allowed: add it to socket.allow_uids or one of its groups to socket.allow_gids",
		pr.peer.UID, pr.peer.PID)
}
