// Package cli implements the simproof command line: a client of the socket
// API that prints readable tables or JSON, with the exit statuses of
// spec/api.md, plus the demo that runs the whole job on simulated parts.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultSocket is the daemon's default socket path.
const DefaultSocket = "/run/simproof/simproof.sock"

// Exit statuses (spec/api.md).
const (
	ExitOK          = 0
	ExitNotVerified = 1
	ExitUsage       = 2
	ExitFailed      = 3
)

// APIError is a problem+json answer from the daemon.
type APIError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Detail)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Title)
}

// Client talks to simproofd over its Unix socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "unix", path)
		},
		MaxIdleConns: 4,
	}}}
}

// ErrUnreachable means no daemon answered on the socket.
var ErrUnreachable = errors.New("daemon unreachable")

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (raw bytes are returned too, for --json).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://simproof"+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Socket, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		ae := &APIError{Status: resp.StatusCode}
		if jerr := json.Unmarshal(raw, ae); jerr != nil || ae.Code == "" {
			ae.Code = "http_" + fmt.Sprint(resp.StatusCode)
			ae.Detail = string(bytes.TrimSpace(raw))
		}
		return raw, ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, fmt.Errorf("decode answer from %s: %w", path, err)
		}
	}
	return raw, nil
}
