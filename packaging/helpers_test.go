package packaging_test

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cmdTimeout bounds every external command a test runs (builds included).
const cmdTimeout = 5 * time.Minute

// repoRoot is the checkout's top directory (tests run in packaging/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// needLinux skips on other systems: the packages and units are Linux's.
func needLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("packages and systemd units are Linux-only (GOOS=%s)", runtime.GOOS)
	}
}

// tool finds a program or skips the test saying what is missing and how it
// gets installed.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (%s): make test-deps installs it", name, install)
	}
	return p
}

// nfpmPath finds nfpm on PATH or where `go install` puts it.
func nfpmPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nfpm"); err == nil {
		return p
	}
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		dir := strings.TrimSpace(string(out))
		if err != nil || dir == "" {
			continue
		}
		if v == "GOPATH" {
			dir = filepath.Join(strings.Split(dir, string(os.PathListSeparator))[0], "bin")
		}
		if p := filepath.Join(dir, "nfpm"); isExecutable(p) {
			return p
		}
	}
	t.Skip("nfpm not installed (go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0): make test-deps installs it")
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// run runs a command with a bounded time and returns its combined output.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), err
}

// mustRun is run that fails the test on a non-zero exit.
func mustRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, dir, env, name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// unitFile is a parsed systemd unit: section → key → values in file order
// (repeated keys accumulate, as systemd's list settings do).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, "\\"):
			t.Fatalf("%s:%d: line continuations are not expected here", path, n)
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one is a setting that must appear once.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Errorf("[%s] %s: want one value, have %q", section, key, v)
		return ""
	}
	return v[0]
}

// words is a list setting split into its words (all assignments).
func (u unitFile) words(section, key string) []string {
	var w []string
	for _, v := range u[section][key] {
		w = append(w, strings.Fields(v)...)
	}
	return w
}

// arch describes one packaged architecture in every format's spelling.
type arch struct {
	name          string // bin/linux-<name>
	goarch, goarm string
	nfpm          string
	deb, rpm, apk string
	machine       elf.Machine
	class         elf.Class
}

var arches = []arch{
	{"amd64", "amd64", "", "amd64", "amd64", "x86_64", "x86_64", elf.EM_X86_64, elf.ELFCLASS64},
	{"arm64", "arm64", "", "arm64", "arm64", "aarch64", "aarch64", elf.EM_AARCH64, elf.ELFCLASS64},
	{"armv7", "arm", "7", "arm7", "armhf", "armv7hl", "armv7", elf.EM_ARM, elf.ELFCLASS32},
}

// checkStaticELF proves a binary runs on the target without a libc or loader:
// the right machine and word size, no program interpreter, no shared
// libraries, and no symbol table (built with -s -w).
func checkStaticELF(name string, r io.ReaderAt, a arch) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("%s: not ELF: %w", name, err)
	}
	defer f.Close()
	var errs []error
	if f.Machine != a.machine || f.Class != a.class {
		errs = append(errs, fmt.Errorf("%s: %v %v, want %v %v for %s", name, f.Machine, f.Class, a.machine, a.class, a.name))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			errs = append(errs, fmt.Errorf("%s: has a program interpreter: dynamically linked", name))
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		errs = append(errs, fmt.Errorf("%s: needs shared libraries %v", name, libs))
	}
	if f.Section(".symtab") != nil {
		errs = append(errs, fmt.Errorf("%s: not stripped (has .symtab)", name))
	}
	return errors.Join(errs...)
}

// seedBaseUnits copies this host's systemd units (sysinit.target,
// sockets.target, ModemManager.service, …) into root's /usr/lib/systemd/system
// without overwriting anything already there, and links /lib to usr/lib as on
// a merged-/usr system: systemd-analyze --root= resolves every dependency
// inside root, so the tree must look like an installed system.
func seedBaseUnits(t *testing.T, root string) {
	t.Helper()
	host := ""
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			host = d
			break
		}
	}
	if host == "" {
		t.Skip("no systemd unit directory on this host to stand in for the target's base system")
	}
	dst := filepath.Join(root, "usr/lib/systemd/system")
	err := filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		to := filepath.Join(dst, rel)
		if _, err := os.Lstat(to); err == nil {
			return nil // the package's own file wins; directories merge
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy base units from %s: %v", host, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "lib")); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
			t.Fatal(err)
		}
	}
}

// verifyUnits runs systemd-analyze verify inside root. systemd reports
// problems in unit files (unknown keys, bad values, missing executables) as
// messages while still exiting 0 for many of them, so any output is a failure.
func verifyUnits(t *testing.T, root string, units ...string) error {
	t.Helper()
	out, err := run(t, "", nil, "systemd-analyze",
		append([]string{"verify", "--root=" + root}, units...)...)
	if out = strings.TrimSpace(out); err != nil || out != "" {
		return fmt.Errorf("systemd-analyze verify %v (exit: %v):\n%s", units, err, out)
	}
	return nil
}

// sandboxExceptions are the systemd-analyze security checks simproofd.service
// deliberately fails, each with the reason. Any other check that scores
// exposure is a hardening line gone missing.
var sandboxExceptions = map[string]string{
	"PrivateNetwork":           "the daemon configures and uses the host's modem interfaces",
	"PrivateUsers":             "its capabilities must act on the host's network",
	"PrivateDevices":           "the AT backend opens real serial ports (DevicePolicy=closed + DeviceAllow= instead)",
	"DeviceAllow":              "modem serial ports: ttyUSB, ttyACM, wwan_port, ttyS",
	"IPAddressDeny":            "providers' check URLs and operator hops can be anywhere",
	"AmbientCapabilities":      "CAP_NET_ADMIN and CAP_NET_RAW for a non-root user",
	"SupplementaryGroups":      "dialout, for the AT ports",
	"ProcSubset":               "not proven harmless for every linked library (see the unit)",
	"RootDirectoryOrRootImage": "the daemon needs the host's /dev, D-Bus and /etc",
	"SystemCallFilter_resources": "the Go runtime raises RLIMIT_NOFILE at start; " +
		"a hard deny is not worth an unproven failure",
	"SystemCallFilter_privileged":         "@privileged holds chown: the daemon sets its socket's group when it listens itself",
	"CapabilityBoundingSet_CAP_NET_ADMIN": "netlink address, route and rule configuration",
	// systemd 252 spells this one with a stray ")"; matched without it.
	"CapabilityBoundingSet_CAP_NET_BIND_SERVICE_BROADCAST_RAW": "CAP_NET_RAW: SO_BINDTODEVICE and the DHCP client's packet socket",
	"RestrictAddressFamilies_AF_PACKET":                        "the DHCPv4 client on an unaddressed interface",
	"RestrictAddressFamilies_AF_NETLINK":                       "interface, address, route and rule configuration",
	"RestrictAddressFamilies_AF_UNIX":                          "API socket, D-Bus, journald, sd_notify",
	"RestrictAddressFamilies_AF_INET_INET6":                    "provider APIs and check URLs",
}

// checkSandbox scores simproofd.service inside root with systemd-analyze
// security --offline and fails on every exposure that is not a documented
// exception. It returns the overall line systemd prints.
func checkSandbox(t *testing.T, root string) string {
	t.Helper()
	out, err := run(t, "", nil, "systemd-analyze", "security", "--offline=yes", "--root="+root, "--json=short", "simproofd.service")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var checks []struct {
		Set      bool    `json:"set"`
		Field    string  `json:"json_field"`
		Name     string  `json:"name"`
		Desc     string  `json:"description"`
		Exposure *string `json:"exposure"`
	}
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("systemd-analyze security --json: %v\n%s", err, out)
	}
	if len(checks) < 40 {
		t.Fatalf("systemd-analyze security gave only %d checks", len(checks))
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' {
				return r
			}
			return -1
		}, s)
	}
	var missing []string
	for _, c := range checks {
		if c.Set || c.Exposure == nil {
			continue
		}
		if v, err := strconv.ParseFloat(*c.Exposure, 64); err != nil || v == 0 {
			continue
		}
		if _, ok := sandboxExceptions[clean(c.Field)]; !ok {
			missing = append(missing, fmt.Sprintf("%s (%s, exposure %s)", c.Name, c.Desc, *c.Exposure))
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("sandbox check not met and not a documented exception: %s", m)
	}
	text, _ := run(t, "", nil, "systemd-analyze", "security", "--offline=yes", "--root="+root, "simproofd.service")
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "Overall exposure level") {
			return strings.TrimSpace(l)
		}
	}
	return "(no overall exposure line)"
}
