package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{"documented config", []string{"--check-config", "--config", "../../configs/simproof.yaml"}, 0, "configuration is valid", nil},
		{"bad config names key and line", []string{"--check-config", "--config", "testdata/bad.yaml"}, 2, "",
			[]string{"testdata/bad.yaml:4: checks.queue", "testdata/bad.yaml:5: bogus: unknown key"}},
		{"missing file", []string{"--check-config", "--config", "testdata/none.yaml"}, 2, "", []string{"no such file"}},
		{"bad flag", []string{"--frobnicate"}, 2, "", []string{"flag provided but not defined"}},
		{"version", []string{"--version"}, 0, "simproofd", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.stdout)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("stderr %q lacks %q", errb.String(), want)
				}
			}
		})
	}
}
