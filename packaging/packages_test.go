package packaging_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// testVersion is the version the test packages carry (binary and package).
const testVersion = "0.0.0.1"

// TestPackages builds simproof's .deb, .rpm and .apk with packaging/nfpm.yaml
// from freshly built binaries and inspects each: metadata, the exact file
// list, the conffile, static binaries of the right architecture, the scripts;
// then extracts the .deb into a scratch root and verifies and sandbox-scores
// the units there. Only amd64 by default (cross-building costs minutes; `make
// packages` builds all three); SIMPROOF_PACKAGE_ARCHES=amd64,arm64,armv7 tests
// more.
func TestPackages(t *testing.T) {
	needLinux(t)
	nfpm := nfpmPath(t)
	tool(t, "dpkg-deb", "apt-get install dpkg")
	repo := repoRoot(t)
	want := []string{"amd64"}
	if v := os.Getenv("SIMPROOF_PACKAGE_ARCHES"); v != "" {
		want = strings.Split(v, ",")
	}
	for _, name := range want {
		i := slices.IndexFunc(arches, func(a arch) bool { return a.name == name })
		if i < 0 {
			t.Fatalf("SIMPROOF_PACKAGE_ARCHES: unknown arch %q", name)
		}
		a := arches[i]
		t.Run(a.name, func(t *testing.T) {
			dist := buildPackages(t, repo, nfpm, a)
			t.Run("deb", func(t *testing.T) { checkDeb(t, repo, one(t, dist, "*.deb"), a) })
			t.Run("rpm", func(t *testing.T) { checkRPM(t, repo, one(t, dist, "*.rpm"), a) })
			t.Run("apk", func(t *testing.T) { checkAPK(t, repo, one(t, dist, "*.apk"), a) })
		})
	}
}

// buildPackages cross-builds the binaries as `make build` does and runs nfpm
// for every format; it returns the directory holding the packages.
func buildPackages(t *testing.T, repo, nfpm string, a arch) string {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin", "linux-"+a.name)
	mustRun(t, repo, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + a.goarch, "GOARM=" + a.goarm},
		"go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/simproof/simproof/internal/version.Version="+testVersion,
		"-o", bin+"/", "./cmd/simproofd", "./cmd/simproof")
	dist := filepath.Join(tmp, "dist")
	if err := os.Mkdir(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"deb", "rpm", "apk"} {
		mustRun(t, repo, []string{"SIMPROOF_ARCH=" + a.nfpm, "SIMPROOF_BIN=" + bin, "SIMPROOF_VERSION=" + testVersion},
			nfpm, "package", "--config", "packaging/nfpm.yaml", "--packager", format, "--target", dist+"/")
	}
	return dist
}

func one(t *testing.T, dir, glob string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, glob))
	if len(m) != 1 {
		t.Fatalf("%s in %s: %v", glob, dir, m)
	}
	return m[0]
}

// expectedFiles is every file nfpm.yaml puts in a packager's package, as
// absolute paths.
func expectedFiles(t *testing.T, repo, packager string) []string {
	t.Helper()
	var files []string
	for _, c := range nfpmContents(t, repo) {
		if c.Packager == "" || c.Packager == packager {
			files = append(files, c.Dst)
		}
	}
	slices.Sort(files)
	return files
}

func checkDeb(t *testing.T, repo, deb string, a arch) {
	fields := mustRun(t, "", nil, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture")
	for _, w := range []string{"Package: simproof\n", "Version: " + testVersion + "-1\n", "Architecture: " + a.deb + "\n"} {
		if !strings.Contains(fields, w) {
			t.Errorf("control fields lack %q:\n%s", w, fields)
		}
	}
	info := mustRun(t, "", nil, "dpkg-deb", "--info", deb)
	for _, s := range []string{"postinst", "prerm", "postrm", "conffiles"} {
		if !regexp.MustCompile(`(?m)\s` + s + `\s`).MatchString(info) {
			t.Errorf("control archive lacks %s:\n%s", s, info)
		}
	}
	if got := strings.TrimSpace(mustRun(t, "", nil, "dpkg-deb", "--info", deb, "conffiles")); got != "/etc/simproof/simproof.yaml" {
		t.Errorf("conffiles = %q, want /etc/simproof/simproof.yaml", got)
	}

	// The file list is exactly what nfpm.yaml says, and no OpenRC.
	var files []string
	for _, l := range strings.Split(mustRun(t, "", nil, "dpkg-deb", "--contents", deb), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		files = append(files, strings.TrimPrefix(f[len(f)-1], "."))
	}
	slices.Sort(files)
	if exp := expectedFiles(t, repo, "deb"); !slices.Equal(files, exp) {
		t.Errorf("deb contents:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(exp, "\n"))
	}

	root := t.TempDir()
	mustRun(t, "", nil, "dpkg-deb", "-x", deb, root)
	checkTree(t, repo, root, "deb", a)

	if lintian, err := exec.LookPath("lintian"); err == nil {
		// Findings are reported, never fatal (see packaging/README.md).
		out, err := run(t, "", nil, lintian, "--allow-root", "--tag-display-limit", "0", deb)
		t.Logf("lintian %s (exit: %v):\n%s", filepath.Base(deb), err, out)
	} else {
		t.Log("lintian not installed: no lintian report")
	}

	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd): units not verified in the package tree")
	}
	seedBaseUnits(t, root)
	if err := verifyUnits(t, root, "simproofd.service", "simproofd.socket"); err != nil {
		t.Error(err)
	}
	t.Logf("package tree: %s", checkSandbox(t, root))
	checkUnitPaths(t, root)
}

// checkTree compares an extracted package with its sources: every non-binary
// file byte for byte with the mode nfpm.yaml gives it, the binaries static
// ELF for the arch, and on the host's arch, the binary runs and accepts the
// shipped configuration.
func checkTree(t *testing.T, repo, root, packager string, a arch) {
	t.Helper()
	for _, c := range nfpmContents(t, repo) {
		if c.Packager != "" && c.Packager != packager {
			continue
		}
		p := filepath.Join(root, c.Dst)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", c.Dst, err)
			continue
		}
		if c.FileInfo.Mode != 0 && fi.Mode().Perm() != c.FileInfo.Mode {
			t.Errorf("%s: mode %v, want %v", c.Dst, fi.Mode().Perm(), c.FileInfo.Mode)
		}
		if strings.Contains(c.Src, "${SIMPROOF_BIN}") {
			f, err := os.Open(p)
			if err != nil {
				t.Error(err)
				continue
			}
			if err := checkStaticELF(c.Dst, f, a); err != nil {
				t.Error(err)
			}
			f.Close()
			continue
		}
		got, _ := os.ReadFile(p)
		src, err := os.ReadFile(filepath.Join(repo, c.Src))
		if err != nil || !bytes.Equal(got, src) {
			t.Errorf("%s differs from %s (%v)", c.Dst, c.Src, err)
		}
	}
	if runtime.GOARCH != a.goarch {
		return
	}
	d := filepath.Join(root, "usr/bin/simproofd")
	if out := mustRun(t, "", nil, d, "--version"); !strings.Contains(out, testVersion) {
		t.Errorf("simproofd --version = %q, want %s", out, testVersion)
	}
	mustRun(t, "", nil, d, "--check-config", "--config", filepath.Join(root, "etc/simproof/simproof.yaml"))
}

// checkUnitPaths checks that every path the installed units name exists in
// the tree: ExecStart's binary, the Documentation file, the drop-in and the
// socket's service.
func checkUnitPaths(t *testing.T, root string) {
	t.Helper()
	svc := parseUnit(t, filepath.Join(root, serviceFile))
	sock := parseUnit(t, filepath.Join(root, socketFile))
	cmd := strings.Fields(svc.one(t, "Service", "ExecStart"))
	if len(cmd) == 0 || !isExecutable(filepath.Join(root, cmd[0])) {
		t.Errorf("ExecStart binary %v not executable in the package", cmd)
	}
	for _, d := range append(svc.words("Unit", "Documentation"), sock.words("Unit", "Documentation")...) {
		if p, ok := strings.CutPrefix(d, "file:"); ok {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("Documentation=%s: %v", d, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, dropInFile)); err != nil {
		t.Errorf("ModemManager drop-in: %v", err)
	}
	if s := sock.one(t, "Socket", "Service"); s != "" {
		if _, err := os.Stat(filepath.Join(root, unitDir, s)); err != nil {
			t.Errorf("socket's Service=%s: %v", s, err)
		}
	}
}

func checkRPM(t *testing.T, repo, rpm string, a arch) {
	rpmBin, err := exec.LookPath("rpm")
	if err != nil {
		t.Skip("rpm not installed (apt-get install rpm): .rpm built but not inspected")
	}
	if got := mustRun(t, "", nil, rpmBin, "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}\n", rpm); got != "simproof "+testVersion+" "+a.rpm+"\n" {
		t.Errorf("rpm name/version/arch = %q", got)
	}
	if got := strings.TrimSpace(mustRun(t, "", nil, rpmBin, "-qcp", rpm)); got != "/etc/simproof/simproof.yaml" {
		t.Errorf("rpm config files = %q", got)
	}
	// %config(noreplace): RPMFILE_CONFIG (1) and RPMFILE_NOREPLACE (1<<4).
	flags := mustRun(t, "", nil, rpmBin, "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS}\n]", rpm)
	m := regexp.MustCompile(`(?m)^/etc/simproof/simproof.yaml (\d+)$`).FindStringSubmatch(flags)
	n := -1
	if len(m) == 2 {
		n, _ = strconv.Atoi(m[1])
	}
	if n < 0 || n&1 == 0 || n&16 == 0 {
		t.Errorf("simproof.yaml is not %%config(noreplace) (flags %d):\n%s", n, flags)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimSpace(mustRun(t, "", nil, rpmBin, "-qlp", rpm)), "\n") {
		files = append(files, f)
	}
	slices.Sort(files)
	if exp := expectedFiles(t, repo, "rpm"); !slices.Equal(files, exp) {
		t.Errorf("rpm contents:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(exp, "\n"))
	}
	scripts := mustRun(t, "", nil, rpmBin, "-qp", "--scripts", rpm)
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet"} {
		if !strings.Contains(scripts, s) {
			t.Errorf("rpm lacks a %s", s)
		}
	}
}

// checkAPK reads the .apk (concatenated gzip streams of tar segments) with Go's
// own readers: no apk-tools on Debian.
func checkAPK(t *testing.T, repo, apk string, a arch) {
	f, err := os.Open(apk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	meta := map[string][]byte{}
	var files []string
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", apk, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 64<<20))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(h.Name, ".") {
			meta[h.Name] = b
			continue
		}
		files = append(files, "/"+h.Name)
		modes["/"+h.Name] = h.Mode
		if h.Name == "usr/bin/simproofd" || h.Name == "usr/bin/simproof" {
			if err := checkStaticELF(h.Name, bytes.NewReader(b), a); err != nil {
				t.Error(err)
			}
		}
	}
	info := string(meta[".PKGINFO"])
	for _, w := range []string{"pkgname = simproof\n", "pkgver = " + testVersion + "-r1\n", "arch = " + a.apk + "\n"} {
		if !strings.Contains(info, w) {
			t.Errorf(".PKGINFO lacks %q:\n%s", w, info)
		}
	}
	slices.Sort(files)
	if exp := expectedFiles(t, repo, "apk"); !slices.Equal(files, exp) {
		t.Errorf("apk contents:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(exp, "\n"))
	}
	for _, f := range files {
		if strings.Contains(f, "systemd") || strings.Contains(f, "sysusers") || strings.Contains(f, "tmpfiles") {
			t.Errorf("apk carries %s: Alpine has no systemd", f)
		}
	}
	if modes["/etc/init.d/simproofd"]&0o111 == 0 {
		t.Errorf("/etc/init.d/simproofd mode %o: not executable", modes["/etc/init.d/simproofd"])
	}
	for script, src := range map[string]string{
		".post-install":  "packaging/scripts/postinstall-openrc.sh",
		".post-upgrade":  "packaging/scripts/postinstall-openrc.sh",
		".pre-deinstall": "packaging/scripts/preremove-openrc.sh",
	} {
		want, err := os.ReadFile(filepath.Join(repo, src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(meta[script], want) {
			t.Errorf("apk %s is not %s", script, src)
		}
	}
}
