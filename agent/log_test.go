package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/simproof/simproof/config"
)

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	// Not under systemd here: auto means text on stderr.
	log, err := NewLogger(config.Log{Level: "warn", Format: "auto"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "modem", "356938035643809")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN msg=shown modem=356938035643809") {
		t.Errorf("auto/text output %q", out)
	}
	buf.Reset()
	log, _ = NewLogger(config.Log{Level: "debug", Format: "json"}, &buf)
	log.Debug("x", "k", 1)
	if !strings.Contains(buf.String(), `"msg":"x","k":1`) {
		t.Errorf("json output %q", buf.String())
	}
	if _, err := NewLogger(config.Log{Level: "loud", Format: "text"}, &buf); err == nil {
		t.Error("bad level accepted")
	}
}

func TestJournalFields(t *testing.T) {
	for in, want := range map[string]string{"modem": "SIMPROOF_MODEM", "retry_in": "SIMPROOF_RETRY_IN", "a.b-c": "SIMPROOF_A_B_C"} {
		if got := journalKey(in); got != want {
			t.Errorf("journalKey(%q) = %q, want %q", in, got, want)
		}
	}
	for l, want := range map[slog.Level]journal.Priority{slog.LevelDebug: journal.PriDebug, slog.LevelInfo: journal.PriInfo,
		slog.LevelWarn: journal.PriWarning, slog.LevelError: journal.PriErr} {
		if got := priority(l); got != want {
			t.Errorf("priority(%v) = %v, want %v", l, got, want)
		}
	}
}
