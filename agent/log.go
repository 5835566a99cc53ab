package agent

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/simproof/simproof/config"
)

// NewLogger builds the daemon's logger from log.level and log.format.
func NewLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
}
