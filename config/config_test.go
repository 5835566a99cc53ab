package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDocumentedFileIsDefault(t *testing.T) {
	cfg, err := Load("../configs/simproof.yaml")
	if err != nil {
		t.Fatalf("documented config does not load: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(normalize(cfg), normalize(want)) {
		t.Errorf("configs/simproof.yaml differs from Default():\n got %+v\nwant %+v", cfg, want)
	}
}

// normalize treats nil and empty slices alike: the file writes [] where the
// default has nil.
func normalize(c Config) Config {
	if len(c.Socket.AllowUIDs) == 0 {
		c.Socket.AllowUIDs = nil
	}
	if len(c.Socket.AllowGIDs) == 0 {
		c.Socket.AllowGIDs = nil
	}
	if len(c.AT.Ports) == 0 {
		c.AT.Ports = nil
	}
	if len(c.SIMs) == 0 {
		c.SIMs = nil
	}
	return c
}

// TestEveryKeyDocumented walks the struct's yaml tags and requires each key
// to appear in configs/simproof.yaml (list-element keys in its comments).
func TestEveryKeyDocumented(t *testing.T) {
	data, err := os.ReadFile("../configs/simproof.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, p := range keyPaths(&root) {
		documented[p] = true
	}
	text := string(data)
	var walk func(tp reflect.Type, prefix string, inList bool)
	walk = func(tp reflect.Type, prefix string, inList bool) {
		for i := 0; i < tp.NumField(); i++ {
			f := tp.Field(i)
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			path := key
			if prefix != "" {
				path = prefix + "." + key
			}
			ft := f.Type
			switch {
			case inList:
				if !strings.Contains(text, key+":") {
					t.Errorf("list element key %s is not documented", path)
				}
			case !documented[path]:
				t.Errorf("key %s is not documented in configs/simproof.yaml", path)
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
				walk(ft, path, inList)
			}
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				walk(ft.Elem(), path+"[]", true)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "", false)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantLine int
		wantKey  string
		wantMsg  string
	}{
		{"unknown top key", "socket:\n  path: /x\nbogus: 1\n", 3, "bogus", `unknown key "bogus"`},
		{"unknown nested key", "socket:\n  path: /x\n  mdoe: \"0600\"\n", 3, "socket.mdoe", `unknown key "mdoe"`},
		{"wrong type int", "checks:\n  queue: many\n", 2, "checks.queue", "cannot unmarshal"},
		{"wrong type duration", "checks:\n  hop_timeout: soon\n", 2, "checks.hop_timeout", "cannot unmarshal"},
		{"wrong type in list", "at:\n  ports:\n    - device: /dev/ttyUSB2\n      baud: fast\n", 4, "at.ports[0].baud", "cannot unmarshal"},
		{"bad enum", "log:\n  level: loud\n", 0, "log.level", "not one of"},
		{"bad mode", "socket:\n  mode: rw\n", 0, "socket.mode", "octal"},
		{"empty device", "at:\n  ports:\n    - profile: auto\n", 0, "at.ports[0].device", "must not be empty"},
		{"negative queue", "checks:\n  queue: -1\n", 0, "checks.queue", "positive"},
		{"syntax", "socket: [\n", 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("want an error, got none")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %v is not config.Errors", err)
			}
			e := es[0]
			if tt.wantLine != 0 && e.Line != tt.wantLine {
				t.Errorf("line = %d, want %d (%v)", e.Line, tt.wantLine, e)
			}
			if e.Key != tt.wantKey {
				t.Errorf("key = %q, want %q (%v)", e.Key, tt.wantKey, e)
			}
			if !strings.Contains(e.Msg, tt.wantMsg) {
				t.Errorf("msg = %q, want it to contain %q", e.Msg, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "test.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`
socket: {path: /tmp/s.sock, mode: "0600", allow_uids: [1000]}
at:
  ports:
    - {device: /dev/ttyUSB2}
checks: {hop_timeout: 2s}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket.Path != "/tmp/s.sock" || cfg.Socket.AllowUIDs[0] != 1000 {
		t.Errorf("socket = %+v", cfg.Socket)
	}
	if m, _ := cfg.SocketMode(); m != 0o600 {
		t.Errorf("mode = %o", m)
	}
	if cfg.AT.Ports[0].Profile != "auto" {
		t.Errorf("profile default = %q, want auto", cfg.AT.Ports[0].Profile)
	}
	if cfg.Checks.HopTimeout != 2*time.Second || cfg.Checks.Queue != 64 {
		t.Errorf("checks = %+v (defaults must survive partial sections)", cfg.Checks)
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	cfg, err := Parse("e.yaml", []byte("  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Error("empty file is not the default")
	}
}
