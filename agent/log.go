package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/simproof/simproof/config"
)

// NewLogger builds the daemon's logger from log.level and log.format: the
// native journal under systemd ("auto" when stderr is the journal's stream,
// or "journal"), JSON or text on stderr otherwise.
func NewLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "journal":
		if !journal.Enabled() {
			return nil, fmt.Errorf("log.format journal: the journal's socket is not reachable")
		}
		return slog.New(&journalHandler{level: level}), nil
	case "auto":
		if onJournal, _ := journal.StderrIsJournalStream(); onJournal && journal.Enabled() {
			return slog.New(&journalHandler{level: level}), nil
		}
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// journalHandler sends records to the native journal: the message as
// MESSAGE, the level as PRIORITY, each attribute as a field of its own
// (SIMPROOF_MODEM=…), so journalctl can filter on them.
type journalHandler struct {
	level slog.Leveler
	attrs []slog.Attr
	group string
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "simproofd"}
	var text strings.Builder
	text.WriteString(r.Message)
	add := func(a slog.Attr, prefix string) {
		key := journalKey(prefix + a.Key)
		val := a.Value.Resolve().String()
		vars[key] = val
		fmt.Fprintf(&text, " %s=%s", a.Key, quoteIfNeeded(val))
	}
	for _, a := range h.attrs {
		add(a, "")
	}
	r.Attrs(func(a slog.Attr) bool {
		add(a, h.group)
		return true
	})
	return journal.Send(text.String(), priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.group + name + "_"
	return &c
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// journalKey makes a journal field name: upper case letters, digits and
// underscores, not starting with an underscore (reserved for the journal).
func journalKey(k string) string {
	var b strings.Builder
	b.WriteString("SIMPROOF_")
	for _, r := range strings.ToUpper(k) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func quoteIfNeeded(s string) string {
	if strings.ContainsAny(s, " \t\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
