package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestQuoteArgs(t *testing.T) {
	got := quoteArgs([]string{"-out", "BENCHMARKS.md", "-idle", "60s", "a b", "it's", ""})
	want := `-out BENCHMARKS.md -idle 60s 'a b' 'it'\''s' ''`
	if got != want {
		t.Errorf("quoteArgs = %s, want %s", got, want)
	}
}

func TestRefusesWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root: the refusal is for everyone else")
	}
	var out, errb bytes.Buffer
	if code := mainArgs(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "needs root") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestBadFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainArgs([]string{"-no-such-flag"}, &out, &errb); code != 2 {
		t.Errorf("exit %d for an unknown flag", code)
	}
}
