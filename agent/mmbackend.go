package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/mm"
)

// mmRunner runs the ModemManager backend under the daemon: it is event
// driven from New on, so Run only waits and closes it.
type mmRunner struct{ b *mm.Backend }

func (r mmRunner) Events() <-chan modem.Event        { return r.b.Events() }
func (r mmRunner) Get(id string) (modem.Modem, bool) { return r.b.Get(id) }
func (r mmRunner) Run(ctx context.Context)           { <-ctx.Done(); r.b.Close() }
func (r mmRunner) Status() (string, string) {
	return "running", fmt.Sprintf("%d modems", len(r.b.List()))
}

// newMMBackend connects to ModemManager on the configured bus.
func newMMBackend(ctx context.Context, c config.ModemManager, log *slog.Logger) (RunningBackend, error) {
	b, err := mm.New(ctx, mm.Options{BusAddress: c.Bus, EnableModems: c.EnableModems, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("modemmanager backend on %s bus: %w", c.Bus, err)
	}
	return mmRunner{b}, nil
}

func (r mmRunner) Resyncs() uint64 { return r.b.Resyncs() }
