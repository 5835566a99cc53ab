package at

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/simproof/simproof/modem"
)

// parserCase is one case of testdata/profiles/answers.txt.
type parserCase struct {
	parser string
	lines  []string
	want   string
	line   int
}

func readParserCases(t *testing.T) []parserCase {
	t.Helper()
	f, err := os.Open("testdata/profiles/answers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []parserCase
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "== "):
			out = append(out, parserCase{parser: strings.TrimSpace(l[3:]), line: n})
		case strings.HasPrefix(l, "<"), strings.HasPrefix(l, ">"):
			if len(out) == 0 {
				t.Fatalf("answers.txt:%d: %q before the first case", n, l)
			}
			c := &out[len(out)-1]
			if l[0] == '<' {
				c.lines = append(c.lines, strings.TrimPrefix(strings.TrimPrefix(l, "<"), " "))
			} else {
				c.want = strings.TrimSpace(l[1:])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func orDash(a fmt.Stringer, valid bool) string {
	if !valid {
		return "-"
	}
	return a.String()
}

// renderParsed runs the named parser on lines and renders what it made.
func renderParsed(t *testing.T, parser string, lines []string) string {
	switch parser {
	case "dhcp":
		c, err := parseHuaweiDHCP(lines)
		if err != nil {
			return "error"
		}
		return strings.TrimSpace(fmt.Sprintf("%s/%d gw %s dns %s", c.Address, c.Prefix, c.Gateway, strings.Join(c.DNS, ",")))
	case "qnetdevctl":
		st, ok := parseQNETDEVCTL(lines)
		if !ok {
			return "none"
		}
		return fmt.Sprintf("op=%d cid=%d urc=%d up=%v", st.op, st.cid, st.urc, st.connected)
	case "usbnet":
		n, ok := parseQCFGUSBNet(lines)
		if !ok {
			return "none"
		}
		return fmt.Sprint(n)
	case "qcrmcall":
		if f := parseQCRMCALL(lines); len(f) > 0 {
			return strings.Join(f, ",")
		}
		return "none"
	case "ndisstat":
		var parts []string
		for _, f := range parseNDISSTAT(strings.Join(lines, "\n")) {
			s := f.family + " down"
			if f.connected {
				s = f.family + " up"
			}
			if f.cause != "" {
				s += " cause " + f.cause
			}
			parts = append(parts, s)
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, ", ")
	case "ubmconf":
		n, ok := parseUBMCONF(lines)
		if !ok {
			return "none"
		}
		return fmt.Sprint(n)
	case "uipaddr":
		u, ok := parseUIPADDR(lines)
		if !ok {
			return "none"
		}
		return fmt.Sprintf("cid=%d if=%s v4=%s mask=%s v6=%s", u.cid, u.ifName,
			orDash(u.v4, u.v4.IsValid()), orDash(u.mask, u.mask.IsValid()), orDash(u.v6, u.v6.IsValid()))
	case "scact":
		m := parseSCACT(lines)
		if len(m) == 0 {
			return "none"
		}
		var parts []string
		for cid, up := range m {
			s := "down"
			if up {
				s = "up"
			}
			parts = append(parts, fmt.Sprintf("%d:%s", cid, s))
		}
		slices.Sort(parts)
		return strings.Join(parts, " ")
	case "detect":
		if len(lines) != 2 {
			t.Fatalf("detect needs the +CGMI and the +CGMM line, got %q", lines)
		}
		return detectProfile(modem.Info{Manufacturer: lines[0], Model: lines[1]})
	}
	t.Fatalf("unknown parser %q", parser)
	return ""
}

func TestVendorParsers(t *testing.T) {
	cases := readParserCases(t)
	seen := map[string]int{}
	for _, c := range cases {
		seen[c.parser]++
		t.Run(fmt.Sprintf("%s/line%d", c.parser, c.line), func(t *testing.T) {
			if c.want == "" {
				t.Fatalf("answers.txt:%d: case without a '>' line", c.line)
			}
			if got := renderParsed(t, c.parser, c.lines); got != c.want {
				t.Errorf("answers.txt:%d: %s(%q)\n got %q\nwant %q", c.line, c.parser, c.lines, got, c.want)
			}
		})
	}
	for _, p := range []string{"dhcp", "qnetdevctl", "usbnet", "qcrmcall", "ndisstat", "ubmconf", "uipaddr", "scact", "detect"} {
		if seen[p] < 2 {
			t.Errorf("answers.txt has %d cases for %s; want at least an accepted and a rejected one", seen[p], p)
		}
	}
}

// The simulator writes ^DHCP addresses the way the parser reads them, for
// every octet pattern (leading zeros dropped included).
func TestHexLEAddrRoundTrip(t *testing.T) {
	for _, s := range []string{"100.64.1.2", "10.0.0.1", "0.0.0.1", "1.0.0.0", "255.255.255.255", "192.168.1.0"} {
		a := netip.MustParseAddr(s)
		b := a.As4()
		v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		got, err := hexLEAddr(fmt.Sprintf("%X", v))
		if err != nil || got != a {
			t.Errorf("hexLEAddr(%X) = %v, %v; want %s", v, got, err, s)
		}
	}
	for _, bad := range []string{"", "0x", "123456789", "-1", "G"} {
		if _, err := hexLEAddr(bad); err == nil {
			t.Errorf("hexLEAddr(%q) accepted", bad)
		}
	}
}

func TestContiguousMask(t *testing.T) {
	for _, tt := range []struct {
		mask string
		bits int
		ok   bool
	}{
		{"255.255.255.0", 24, true},
		{"255.255.255.255", 32, true},
		{"0.0.0.0", 0, true},
		{"255.255.255.248", 29, true},
		{"255.0.255.0", 0, false},
		{"0.255.255.255", 0, false},
	} {
		bits, ok := contiguousMask(netip.MustParseAddr(tt.mask).As4())
		if ok != tt.ok || ok && bits != tt.bits {
			t.Errorf("contiguousMask(%s) = %d, %v; want %d, %v", tt.mask, bits, ok, tt.bits, tt.ok)
		}
	}
}

func TestProfilesListsEveryProfile(t *testing.T) {
	got := Profiles()
	want := []string{"auto", "generic", "huawei", "quectel", "quectel-ecm", "quectel-qmi", "sierra", "simcom", "ublox"}
	if !slices.Equal(got, want) {
		t.Fatalf("Profiles() = %v, want %v", got, want)
	}
	for name, p := range profiles {
		if p.name != name || p.netDevice == "" {
			t.Errorf("profile %q: name %q, net device %q", name, p.name, p.netDevice)
		}
		if p.resolve == nil && (p.activate == nil || p.deactivate == nil) {
			t.Errorf("profile %q can neither resolve nor activate", name)
		}
	}
}

// The vendor parsers read hostile bytes: no panic, and what they accept
// is sane.
func FuzzVendorParsers(f *testing.F) {
	for _, c := range []string{
		"^DHCP: 2014064,FFFFFF,1014064,1014064,35014064,36014064,150000000,50000000",
		"^DHCP: 0x,0x,,,,", "+QNETDEVCTL: 1,1,1,1", `+QCFG: "usbnet",1`, "$QCRMCALL: 1,V4",
		`^NDISSTATQRY: 1,,,"IPV4",0,,,"IPV6"`, "^NDISSTAT:", "+UBMCONF: 2",
		`+UIPADDR: 1,"usb0","100.64.1.1","255.255.255.0","",""`, "!SCACT: 1,1",
	} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, line string) {
		lines := strings.Split(line, "\n")
		if c, err := parseHuaweiDHCP(lines); err == nil {
			a, perr := netip.ParseAddr(c.Address)
			if perr != nil || !a.Is4() || a.IsUnspecified() || c.Prefix < 1 || c.Prefix > 32 {
				t.Errorf("^DHCP %q accepted as %+v", line, c)
			}
		}
		if st, ok := parseQNETDEVCTL(lines); ok && (st.cid < 0 || st.cid > 255) {
			t.Errorf("+QNETDEVCTL %q accepted as %+v", line, st)
		}
		parseQCFGUSBNet(lines)
		parseQCRMCALL(lines)
		for _, f := range parseNDISSTAT(line) {
			if f.family != "ipv4" && f.family != "ipv6" {
				t.Errorf("^NDISSTAT %q gave family %q", line, f.family)
			}
		}
		parseUBMCONF(lines)
		parseUIPADDR(lines)
		parseSCACT(lines)
		detectProfile(modem.Info{Manufacturer: line, Model: line})
	})
}
