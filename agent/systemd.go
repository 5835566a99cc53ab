package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// activatedListener returns the socket systemd passed (simproofd.socket),
// or nil when the daemon was not socket-activated.
func activatedListener() (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	for _, l := range ls {
		if l == nil {
			continue
		}
		if _, ok := l.(*net.UnixListener); ok {
			return l, nil
		}
		l.Close() // not ours: simproofd serves one Unix socket
	}
	return nil, nil
}

// notifier speaks sd_notify when systemd runs the daemon (NOTIFY_SOCKET);
// elsewhere every call is a no-op.
type notifier struct{ log *slog.Logger }

func (n notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Debug("sd_notify failed", "state", state, "err", err)
	}
}

// watchdog pings systemd at half the WatchdogSec interval, but only after
// alive answered within that time: a daemon whose scheduler or journal is
// wedged stops pinging and systemd restarts it.
func (n notifier) watchdog(ctx context.Context, alive func(context.Context) error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval/2)
		err := alive(pctx)
		cancel()
		if err != nil {
			n.log.Error("liveness probe failed; not feeding the watchdog", "err", err)
			continue
		}
		n.send(daemon.SdNotifyWatchdog)
	}
}
