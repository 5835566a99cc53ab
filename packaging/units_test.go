package packaging_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// nfpmContent is one entry of packaging/nfpm.yaml's contents.
type nfpmContent struct {
	Src      string `yaml:"src"`
	Dst      string `yaml:"dst"`
	Type     string `yaml:"type"`
	Packager string `yaml:"packager"`
	FileInfo struct {
		Mode os.FileMode `yaml:"mode"`
	} `yaml:"file_info"`
}

func nfpmContents(t *testing.T, repo string) []nfpmContent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "packaging/nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Contents []nfpmContent `yaml:"contents"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("packaging/nfpm.yaml: %v", err)
	}
	return cfg.Contents
}

// installFromSource lays out, in root, what the deb would install, straight
// from the source tree and following nfpm.yaml's own src → dst mapping, with
// stub scripts standing in for the binaries.
func installFromSource(t *testing.T, repo, root string) {
	t.Helper()
	for _, c := range nfpmContents(t, repo) {
		if c.Packager != "" && c.Packager != "deb" {
			continue
		}
		dst := filepath.Join(root, c.Dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		var b []byte
		if strings.Contains(c.Src, "${SIMPROOF_BIN}") {
			b = []byte("#!/bin/sh\nexit 0\n")
		} else {
			var err error
			if b, err = os.ReadFile(filepath.Join(repo, c.Src)); err != nil {
				t.Fatalf("nfpm.yaml names %s: %v", c.Src, err)
			}
		}
		mode := c.FileInfo.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	unitDir     = "usr/lib/systemd/system"
	serviceFile = unitDir + "/simproofd.service"
	socketFile  = unitDir + "/simproofd.socket"
	dropInFile  = unitDir + "/simproofd.service.d/modemmanager.conf"
)

// TestUnitsVerifyFromSource runs systemd-analyze verify on the units as the
// source tree has them, in a root laid out like the package with a stub
// binary, and shows the check has teeth: the same tree without the binary,
// or with a misspelt setting, fails.
func TestUnitsVerifyFromSource(t *testing.T) {
	needLinux(t)
	tool(t, "systemd-analyze", "apt-get install systemd")
	repo := repoRoot(t)
	root := t.TempDir()
	installFromSource(t, repo, root)
	seedBaseUnits(t, root)
	if err := verifyUnits(t, root, "simproofd.service", "simproofd.socket"); err != nil {
		t.Fatal(err)
	}

	t.Run("fails without the binary", func(t *testing.T) {
		bad := t.TempDir()
		installFromSource(t, repo, bad)
		seedBaseUnits(t, bad)
		if err := os.Remove(filepath.Join(bad, "usr/bin/simproofd")); err != nil {
			t.Fatal(err)
		}
		if err := verifyUnits(t, bad, "simproofd.service"); err == nil {
			t.Fatal("verify passed with ExecStart's binary absent")
		}
	})
	t.Run("fails on a misspelt setting", func(t *testing.T) {
		bad := t.TempDir()
		installFromSource(t, repo, bad)
		seedBaseUnits(t, bad)
		f, err := os.OpenFile(filepath.Join(bad, serviceFile), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString("[Service]\nProtectSystem=strcit\n")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyUnits(t, bad, "simproofd.service"); err == nil {
			t.Fatal("verify passed with ProtectSystem=strcit")
		}
	})
}

// TestSandboxFromSource scores the service's sandbox offline: every
// systemd-analyze security check is met except the documented exceptions.
func TestSandboxFromSource(t *testing.T) {
	needLinux(t)
	tool(t, "systemd-analyze", "apt-get install systemd")
	repo := repoRoot(t)
	root := t.TempDir()
	installFromSource(t, repo, root)
	seedBaseUnits(t, root)
	t.Log(checkSandbox(t, root))
}

// TestUnitContract checks the units against what the daemon, the
// configuration and the deployment facts expect of them.
func TestUnitContract(t *testing.T) {
	repo := repoRoot(t)
	svc := parseUnit(t, filepath.Join(repo, "systemd/simproofd.service"))
	sock := parseUnit(t, filepath.Join(repo, "systemd/simproofd.socket"))
	drop := parseUnit(t, filepath.Join(repo, "systemd/modemmanager.conf"))

	var cfg struct {
		Socket struct {
			Path string `yaml:"path"`
		} `yaml:"socket"`
		StateDir string `yaml:"state_dir"`
	}
	b, err := os.ReadFile(filepath.Join(repo, "configs/simproof.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("configs/simproof.yaml: %v", err)
	}

	for _, c := range []struct{ key, want string }{
		{"Type", "notify"},
		{"NotifyAccess", "main"},
		{"WatchdogSec", "30s"},
		{"Restart", "on-failure"},
		{"User", "simproof"},
		{"ExecStart", "/usr/bin/simproofd --config /etc/simproof/simproof.yaml"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"NoNewPrivileges", "yes"},
		{"DevicePolicy", "closed"},
		{"StateDirectory", "simproof"},
		{"RuntimeDirectory", "simproof"},
		{"RuntimeDirectoryPreserve", "yes"},
		{"ConfigurationDirectory", "simproof"},
		{"SystemCallArchitectures", "native"},
	} {
		if got := svc.one(t, "Service", c.key); got != c.want {
			t.Errorf("simproofd.service %s=%q, want %q", c.key, got, c.want)
		}
	}
	for _, c := range []struct {
		key  string
		want []string
	}{
		{"SupplementaryGroups", []string{"dialout"}},
		{"RestrictAddressFamilies", []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"}},
		{"DeviceAllow", []string{"char-ttyUSB", "char-ttyACM"}},
	} {
		got := svc.words("Service", c.key)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("simproofd.service %s=%q lacks %s", c.key, got, w)
			}
		}
	}
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		got := svc.words("Service", key)
		slices.Sort(got)
		if !slices.Equal(got, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
			t.Errorf("simproofd.service %s=%q, want exactly CAP_NET_ADMIN CAP_NET_RAW", key, got)
		}
	}

	// The base unit never names ModemManager: the drop-in does.
	for _, key := range []string{"After", "Wants", "Requires", "BindsTo"} {
		for _, w := range svc.words("Unit", key) {
			if strings.Contains(w, "ModemManager") {
				t.Errorf("simproofd.service [Unit] %s names %s; that belongs in the drop-in", key, w)
			}
		}
	}
	for _, key := range []string{"After", "Wants"} {
		if !slices.Contains(drop.words("Unit", key), "ModemManager.service") {
			t.Errorf("modemmanager.conf lacks %s=ModemManager.service", key)
		}
	}

	// Credentials: bare IDs (a missing one is skipped, not fatal), each
	// documented for the operator.
	readme, err := os.ReadFile(filepath.Join(repo, "packaging/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	creds := svc["Service"]["LoadCredential"]
	if len(creds) == 0 {
		t.Error("simproofd.service loads no credentials")
	}
	for _, id := range creds {
		if strings.Contains(id, ":") {
			t.Errorf("LoadCredential=%s names a path: a missing file would fail the unit", id)
		}
		if !strings.Contains(string(readme), "`"+id+"`") {
			t.Errorf("credential %s is not documented in packaging/README.md", id)
		}
	}

	// The socket and the directories agree with the configuration defaults.
	if got := sock.one(t, "Socket", "ListenStream"); got != cfg.Socket.Path {
		t.Errorf("simproofd.socket ListenStream=%s, configuration socket.path=%s", got, cfg.Socket.Path)
	}
	if got := "/run/" + svc.one(t, "Service", "RuntimeDirectory"); got != path.Dir(cfg.Socket.Path) {
		t.Errorf("RuntimeDirectory is %s, the socket lives in %s", got, path.Dir(cfg.Socket.Path))
	}
	if got := "/var/lib/" + svc.one(t, "Service", "StateDirectory"); got != cfg.StateDir {
		t.Errorf("StateDirectory is %s, configuration state_dir=%s", got, cfg.StateDir)
	}
	for _, c := range []struct{ key, want string }{
		{"SocketMode", "0660"},
		{"SocketGroup", "simproof"},
		{"Service", "simproofd.service"},
	} {
		if got := sock.one(t, "Socket", c.key); got != c.want {
			t.Errorf("simproofd.socket %s=%q, want %q", c.key, got, c.want)
		}
	}

	// tmpfiles.d makes the same directories, with the modes the unit asks for.
	tmpfiles, err := os.ReadFile(filepath.Join(repo, "systemd/simproof.tmpfiles"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"d " + cfg.StateDir + " " + svc.one(t, "Service", "StateDirectoryMode") + " simproof simproof -",
		"d " + path.Dir(cfg.Socket.Path) + " " + svc.one(t, "Service", "RuntimeDirectoryMode") + " simproof simproof -",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).Match(tmpfiles) {
			t.Errorf("simproof.tmpfiles lacks %q", want)
		}
	}
}

// TestSysusersAndTmpfiles applies the package's sysusers.d and tmpfiles.d
// files to a scratch root: the simproof user exists, is in dialout, cannot
// log in, and owns its directories with the right modes.
func TestSysusersAndTmpfiles(t *testing.T) {
	needLinux(t)
	tool(t, "systemd-sysusers", "apt-get install systemd")
	tool(t, "systemd-tmpfiles", "apt-get install systemd")
	repo := repoRoot(t)
	root := t.TempDir()
	installFromSource(t, repo, root)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\ndialout:x:20:\n"), 0o644))
	// With --root the file is named by its path on the host.
	mustRun(t, "", nil, "systemd-sysusers", "--root="+root, filepath.Join(root, "usr/lib/sysusers.d/simproof.conf"))

	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	user := regexp.MustCompile(`(?m)^simproof:x:(\d+):(\d+):[^:]*:/var/lib/simproof:(\S+)$`).FindSubmatch(passwd)
	if user == nil {
		t.Fatalf("no simproof user with home /var/lib/simproof:\n%s", passwd)
	}
	if sh := string(user[3]); !strings.HasSuffix(sh, "nologin") && sh != "/bin/false" {
		t.Errorf("simproof's shell is %s", sh)
	}
	if !regexp.MustCompile(`(?m)^dialout:x:20:(.*,)?simproof(,.*)?$`).Match(group) {
		t.Errorf("simproof is not in dialout:\n%s", group)
	}
	if !regexp.MustCompile(`(?m)^simproof:x:` + string(user[2]) + `:`).Match(group) {
		t.Errorf("no group simproof with gid %s:\n%s", user[2], group)
	}

	if os.Geteuid() != 0 {
		t.Skip("not root: systemd-tmpfiles cannot chown the directories to simproof")
	}
	mustRun(t, "", nil, "systemd-tmpfiles", "--root="+root, "--create", filepath.Join(root, "usr/lib/tmpfiles.d/simproof.conf"))
	for _, c := range []struct {
		dir  string
		mode os.FileMode
	}{{"var/lib/simproof", 0o700}, {"run/simproof", 0o755}} {
		fi, err := os.Stat(filepath.Join(root, c.dir))
		if err != nil {
			t.Errorf("tmpfiles.d did not make /%s: %v", c.dir, err)
			continue
		}
		if fi.Mode().Perm() != c.mode || !fi.IsDir() {
			t.Errorf("/%s: %v, want dir %v", c.dir, fi.Mode(), c.mode)
		}
		if uid := ownerUID(fi); uid != string(user[1]) {
			t.Errorf("/%s owned by uid %s, want simproof's %s", c.dir, uid, user[1])
		}
	}
}

// TestPolkitRule evaluates the polkit rule the way polkitd does (a JavaScript
// function per rule, first non-undefined answer wins): the simproof user gets
// exactly the ModemManager action Simple.Connect needs, nobody else anything.
func TestPolkitRule(t *testing.T) {
	repo := repoRoot(t)
	rule := filepath.Join(repo, "packaging/polkit/50-simproof.rules")
	const action = "org.freedesktop.ModemManager1.Device.Control"
	// The action id must be one ModemManager declares, where it is installed.
	if b, err := os.ReadFile("/usr/share/polkit-1/actions/org.freedesktop.ModemManager1.policy"); err == nil {
		if !strings.Contains(string(b), `<action id="`+action+`">`) {
			t.Errorf("ModemManager's policy declares no action %s", action)
		}
	} else {
		t.Logf("ModemManager's polkit policy not installed here: action id not cross-checked")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: cannot evaluate the polkit rule's JavaScript")
	}
	cases := []struct {
		User   string `json:"user"`
		Action string `json:"action"`
		want   string
	}{
		{"simproof", action, "yes"},
		{"simproof", "org.freedesktop.ModemManager1.Control", ""},
		{"simproof", "org.freedesktop.ModemManager1.Messaging", ""},
		{"simproof", "org.freedesktop.ModemManager1.Firmware", ""},
		{"simproof", "org.freedesktop.login1.reboot", ""},
		{"alice", action, ""},
		{"root", action, ""},
	}
	in, _ := json.Marshal(cases)
	const harness = `
const fs = require("fs");
const rules = [];
const polkit = {
  Result: {YES: "yes", NO: "no", AUTH_ADMIN: "auth_admin", AUTH_SELF: "auth_self",
           AUTH_ADMIN_KEEP: "auth_admin_keep", AUTH_SELF_KEEP: "auth_self_keep", NOT_HANDLED: undefined},
  addRule: f => rules.push(f), addAdminRule: () => {}, log: () => {}, spawn: () => { throw new Error("spawn"); },
};
new Function("polkit", fs.readFileSync(process.argv[1], "utf8"))(polkit);
const out = JSON.parse(process.argv[2]).map(c => {
  const action = {id: c.action, lookup: () => undefined};
  const subject = {user: c.user, groups: [], local: false, active: false, isInGroup: () => false, isInNetGroup: () => false};
  for (const r of rules) { const v = r(action, subject); if (v !== undefined) return v; }
  return "";
});
console.log(JSON.stringify({rules: rules.length, out}));
`
	out := mustRun(t, "", nil, node, "-e", harness, rule, string(in))
	var res struct {
		Rules int      `json:"rules"`
		Out   []string `json:"out"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("harness output %q: %v", out, err)
	}
	if res.Rules != 1 || len(res.Out) != len(cases) {
		t.Fatalf("rule file added %d rules, answered %d cases", res.Rules, len(res.Out))
	}
	for i, c := range cases {
		if res.Out[i] != c.want {
			t.Errorf("user %s action %s: %q, want %q", c.User, c.Action, res.Out[i], c.want)
		}
	}
}

// TestShellScripts parses every shell script the packages and recipes ship.
func TestShellScripts(t *testing.T) {
	needLinux(t)
	sh := tool(t, "sh", "a POSIX shell")
	repo := repoRoot(t)
	scripts, _ := filepath.Glob(filepath.Join(repo, "packaging/scripts/*.sh"))
	scripts = append(scripts,
		filepath.Join(repo, "packaging/openrc/simproofd"),
		filepath.Join(repo, "packaging/openwrt/files/simproofd.init"),
	)
	helpers, _ := filepath.Glob(filepath.Join(repo, "scripts/packaging/*.sh"))
	scripts = append(scripts, helpers...)
	if len(scripts) < 8 {
		t.Fatalf("found only %d scripts: %v", len(scripts), scripts)
	}
	for _, s := range scripts {
		rel, _ := filepath.Rel(repo, s)
		t.Run(rel, func(t *testing.T) {
			if fi, err := os.Stat(s); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("%s missing or not executable: %v", rel, err)
			}
			if out, err := run(t, "", nil, sh, "-n", s); err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		})
	}
}

// TestRecipes checks what can be checked of the OpenWrt and Yocto recipes
// without their build systems: they name this module, and the files they
// install exist.
func TestRecipes(t *testing.T) {
	repo := repoRoot(t)
	gomod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	module := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(gomod), "\n", 2)[0], "module"))
	for _, c := range []struct {
		file string
		want []string
	}{
		{"packaging/openwrt/Makefile", []string{
			"GO_PKG:=" + module,
			"GO_PKG_BUILD_PKG:=" + module + "/cmd/simproofd " + module + "/cmd/simproof",
			"golang-package.mk",
			"./files/simproofd.init",
			"/etc/simproof/simproof.yaml",
		}},
		{"packaging/yocto/simproof_git.bb", []string{
			`GO_IMPORT = "` + module + `"`,
			"inherit go-mod systemd useradd",
			"simproofd.service",
			"simproofd.socket",
			"modemmanager.conf",
			"50-simproof.rules",
		}},
	} {
		b, err := os.ReadFile(filepath.Join(repo, c.file))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", c.file, w)
			}
		}
	}
	initScript, err := os.ReadFile(filepath.Join(repo, "packaging/openwrt/files/simproofd.init"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"USE_PROCD=1", "procd_open_instance", "procd_set_param respawn", "/usr/bin/simproofd", "--config"} {
		if !strings.Contains(string(initScript), w) {
			t.Errorf("simproofd.init lacks %q", w)
		}
	}
}
