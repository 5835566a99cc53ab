// Package config owns simproof's configuration: the YAML schema (one file,
// every key documented in configs/simproof.yaml), its defaults, and strict
// loading that names the offending key and line for unknown keys and wrong
// types.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPath is where the daemon looks without --config.
const DefaultPath = "/etc/simproof/simproof.yaml"

// maxFileSize bounds what Load reads: a config file is a few KiB; anything
// much larger is a mistake (or hostile) and should not be parsed.
const maxFileSize = 1 << 20

// Config is the whole configuration. Zero values are replaced by Default's.
type Config struct {
	Socket        Socket       `yaml:"socket"`
	MetricsListen string       `yaml:"metrics_listen"`
	StateDir      string       `yaml:"state_dir"`
	Log           Log          `yaml:"log"`
	ModemManager  ModemManager `yaml:"modemmanager"`
	AT            AT           `yaml:"at"`
	Simulator     Simulator    `yaml:"simulator"`
	Data          Data         `yaml:"data"`
	SIMs          []SIM        `yaml:"sims"`
	APNDefault    APN          `yaml:"apn_default"`
	Providers     Providers    `yaml:"providers"`
	TLS           TLS          `yaml:"tls"`
	Checks        Checks       `yaml:"checks"`
}

// Socket is the API's Unix socket.
type Socket struct {
	Path      string `yaml:"path"`
	Mode      string `yaml:"mode"` // octal, as a string so "0660" keeps its meaning
	Group     string `yaml:"group"`
	AllowUIDs []int  `yaml:"allow_uids"`
	AllowGIDs []int  `yaml:"allow_gids"`
}

// Log selects level and format.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // auto, text, json, journal
}

// ModemManager configures the D-Bus backend.
type ModemManager struct {
	Enabled      bool   `yaml:"enabled"`
	Bus          string `yaml:"bus"` // system, session, or a D-Bus address
	EnableModems bool   `yaml:"enable_modems"`
}

// AT configures the serial backend.
type AT struct {
	Ports          []ATPort      `yaml:"ports"`
	CommandTimeout time.Duration `yaml:"command_timeout"`
	RefreshEvery   time.Duration `yaml:"refresh_every"`
	Trace          bool          `yaml:"trace"`
}

// ATPort is one modem's AT port.
type ATPort struct {
	Device    string `yaml:"device"`
	Baud      int    `yaml:"baud"`
	Profile   string `yaml:"profile"` // one of ATProfiles
	NetDevice string `yaml:"net_device"`
	PINFile   string `yaml:"pin_file"`
}

// ATProfiles are the data-call profiles an AT port may name (modem/at
// keeps the same list; a test holds them equal).
var ATProfiles = []string{"auto", "generic", "huawei", "quectel", "quectel-ecm", "quectel-qmi", "sierra", "simcom", "ublox"}

// Simulator starts built-in simulated modems, driven by the AT backend over
// pseudo-terminals (the demo and tests; never on a real device).
type Simulator struct {
	Modems int    `yaml:"modems"`
	Dir    string `yaml:"dir"` // where the pty links go; "" = a directory under the runtime dir
	// Network is where the simulated bearers live: "loopback" (lo, each
	// modem its own 127.100.0.N source address; needs no root) or
	// "interfaces" (wwanN with 100.64.N+1.2/24, for network namespaces).
	Network string `yaml:"network"`
}

// Data configures the data path.
type Data struct {
	ManageInterface string `yaml:"manage_interface"` // auto, always, never
	TableBase       int    `yaml:"table_base"`
	RulePriority    int    `yaml:"rule_priority"`
	IPFamily        string `yaml:"ip_family"` // ipv4, ipv6, ipv4v6
}

// SIM holds per-SIM settings, matched by ICCID.
type SIM struct {
	ICCID        string `yaml:"iccid"`
	PhoneNumber  string `yaml:"phone_number"`
	APN          string `yaml:"apn"`
	IPType       string `yaml:"ip_type"`
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
}

// APN is the default data session setting.
type APN struct {
	APN    string `yaml:"apn"`
	IPType string `yaml:"ip_type"`
}

// Providers configures the verification providers.
type Providers struct {
	IDlayr   IDlayr   `yaml:"idlayr"`
	PlasGate PlasGate `yaml:"plasgate"`
}

// IDlayr configures PhoneCheck.
type IDlayr struct {
	BaseURL          string `yaml:"base_url"`
	CredentialsFile  string `yaml:"credentials_file"`
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	DataResidency    string `yaml:"data_residency"`
	Version          string `yaml:"version"`
	RedirectURL      string `yaml:"redirect_url"`
	// CoveragePreflight asks IDlayr's coverage API over the modem before
	// creating a check, so none is paid for on a network without PhoneCheck.
	CoveragePreflight bool `yaml:"coverage_preflight"`
}

// PlasGate configures IP Verification.
type PlasGate struct {
	BaseURL        string `yaml:"base_url"`
	PrivateKeyFile string `yaml:"private_key_file"`
	SecretFile     string `yaml:"secret_file"`
	RedirectURI    string `yaml:"redirect_uri"`
	Scope          string `yaml:"scope"`
	ExchangePath   string `yaml:"exchange_path"`
	VerifyState    bool   `yaml:"verify_state"`
	KeyInQuery     bool   `yaml:"private_key_in_query"`
}

// TLS adds trust roots; verification is never switched off.
type TLS struct {
	CAFile string `yaml:"ca_file"`
}

// Checks bounds the scheduler and the device step.
type Checks struct {
	Queue      int           `yaml:"queue"`
	HopLimit   int           `yaml:"hop_limit"`
	HopTimeout time.Duration `yaml:"hop_timeout"`
	TTLCap     time.Duration `yaml:"ttl_cap"`
	Retention  time.Duration `yaml:"retention"`
}

// Default returns the configuration used for every key the file omits.
func Default() Config {
	return Config{
		Socket:       Socket{Path: "/run/simproof/simproof.sock", Mode: "0660"},
		StateDir:     "/var/lib/simproof",
		Log:          Log{Level: "info", Format: "auto"},
		ModemManager: ModemManager{Enabled: false, Bus: "system"},
		AT:           AT{CommandTimeout: 10 * time.Second, RefreshEvery: time.Minute},
		Simulator:    Simulator{Network: "loopback"},
		Data:         Data{ManageInterface: "auto", TableBase: 1000, RulePriority: 1000, IPFamily: "ipv4"},
		APNDefault:   APN{APN: "internet", IPType: "ipv4"},
		Providers: Providers{
			IDlayr: IDlayr{CredentialsFile: "/etc/simproof/tru.json", Version: "v0.1"},
			PlasGate: PlasGate{BaseURL: "https://cloudapi.plasgate.com", Scope: "phone_verify",
				ExchangePath: "/ip/ip-auth", VerifyState: true},
		},
		Checks: Checks{Queue: 64, HopLimit: 10, HopTimeout: 5 * time.Second, TTLCap: 120 * time.Second,
			Retention: 168 * time.Hour},
	}
}

// Error is a configuration problem; Line is 0 when it is not tied to a line.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Load reads and validates the file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return Config{}, &Error{File: path, Msg: fmt.Sprintf("file larger than %d bytes", maxFileSize)}
	}
	return Parse(path, data)
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type`)

// Parse decodes data (named name in errors) over the defaults and validates it.
func Parse(name string, data []byte) (Config, error) {
	cfg := Default()
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, cfg.Validate(name)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Config{}, yamlError(name, err, nil)
	}
	keys := keyPaths(&root)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, yamlError(name, err, keys)
	}
	return cfg, cfg.Validate(name)
}

// yamlError turns yaml.v3's messages ("line 4: field x not found in type
// config.Socket") into Errors naming the dotted key, which yaml.v3 omits for
// type errors.
func yamlError(name string, err error, keys map[int]string) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out Errors
	for _, m := range msgs {
		e := &Error{File: name, Msg: m}
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			e.Line, _ = strconv.Atoi(sub[1])
			e.Msg = sub[2]
			e.Key = keys[e.Line]
		}
		if sub := unknownFieldRE.FindStringSubmatch(e.Msg); sub != nil {
			e.Msg = "unknown key " + strconv.Quote(sub[1])
		}
		out = append(out, e)
	}
	return out
}

// keyPaths maps each line holding a mapping key (or a value) to the dotted
// path of that key, so a type error on line N can name what it is about.
func keyPaths(root *yaml.Node) map[int]string {
	out := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out[k.Line] = p
				if _, ok := out[v.Line]; !ok || v.Line != k.Line {
					out[v.Line] = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, ok := out[c.Line]; !ok {
					out[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return out
}

// Validate checks values the YAML types cannot.
func (c *Config) Validate(name string) error {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{File: name, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Socket.Path == "" {
		bad("socket.path", "must not be empty")
	}
	if _, err := c.SocketMode(); err != nil {
		bad("socket.mode", "%v", err)
	}
	oneOf := func(key, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "auto", "text", "json", "journal")
	oneOf("data.manage_interface", c.Data.ManageInterface, "auto", "always", "never")
	oneOf("data.ip_family", c.Data.IPFamily, "ipv4", "ipv6", "ipv4v6")
	oneOf("simulator.network", c.Simulator.Network, "loopback", "interfaces")
	oneOf("apn_default.ip_type", c.APNDefault.IPType, "ipv4", "ipv6", "ipv4v6")
	oneOf("providers.idlayr.version", c.Providers.IDlayr.Version, "v0.1", "v0.2")
	for i, p := range c.AT.Ports {
		key := fmt.Sprintf("at.ports[%d]", i)
		if p.Device == "" {
			bad(key+".device", "must not be empty")
		}
		if p.Profile == "" {
			c.AT.Ports[i].Profile = "auto"
		} else {
			oneOf(key+".profile", p.Profile, ATProfiles...)
		}
		if p.Baud < 0 {
			bad(key+".baud", "must not be negative")
		}
	}
	if c.Simulator.Modems < 0 || c.Simulator.Modems > 256 {
		bad("simulator.modems", "must be between 0 and 256")
	}
	for i, s := range c.SIMs {
		if s.ICCID == "" {
			bad(fmt.Sprintf("sims[%d].iccid", i), "must not be empty")
		}
	}
	positive := func(key string, v int64) {
		if v <= 0 {
			bad(key, "must be positive")
		}
	}
	positive("at.command_timeout", int64(c.AT.CommandTimeout))
	positive("checks.queue", int64(c.Checks.Queue))
	positive("checks.hop_limit", int64(c.Checks.HopLimit))
	positive("checks.hop_timeout", int64(c.Checks.HopTimeout))
	positive("checks.ttl_cap", int64(c.Checks.TTLCap))
	positive("checks.retention", int64(c.Checks.Retention))
	positive("data.table_base", int64(c.Data.TableBase))
	positive("data.rule_priority", int64(c.Data.RulePriority))
	if c.StateDir == "" {
		bad("state_dir", "must not be empty")
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// SocketMode parses socket.mode as octal permission bits.
func (c *Config) SocketMode() (os.FileMode, error) {
	v, err := strconv.ParseUint(c.Socket.Mode, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal mode like \"0660\"", c.Socket.Mode)
	}
	return os.FileMode(v), nil
}
