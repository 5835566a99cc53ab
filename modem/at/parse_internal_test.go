package at

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/simproof/simproof/modem"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		name  string
		fn    func([]string) string
		lines []string
		want  string
	}{
		{"imei bare", parseIMEI, []string{"356938035643809"}, "356938035643809"},
		{"imei prefixed", parseIMEI, []string{"+CGSN: 356938035643809"}, "356938035643809"},
		{"imei quoted", parseIMEI, []string{`+CGSN: "356938035643809"`}, "356938035643809"},
		{"imei junk", parseIMEI, []string{"ERROR-ish 12"}, ""},
		{"imei too short", parseIMEI, []string{"12345"}, ""},
		{"ccid", parseICCID, []string{"+CCID: 89441000301234567890"}, "89441000301234567890"},
		{"qccid F filler", parseICCID, []string{"+QCCID: 8944100030123456789F"}, "8944100030123456789"},
		{"iccid quoted", parseICCID, []string{`+ICCID: "89441000301234567890"`}, "89441000301234567890"},
		{"huawei", parseICCID, []string{"^ICCID: 98441000301234567890"}, "98441000301234567890"},
		{"bare", parseICCID, []string{"89441000301234567890"}, "89441000301234567890"},
		{"iccid garbage", parseICCID, []string{"+CCID: hello"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn(tt.lines); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSwapNibbles(t *testing.T) {
	// EF_ICCID of 89014103211118510720 as +CRSM returns it.
	if got := swapNibbles("98101430121181157002"); got != "89014103211118510720" {
		t.Errorf("got %s", got)
	}
	if got := swapNibbles("984410003012345678F9"); got != "8944010003214365879" {
		t.Errorf("F filler: got %s", got)
	}
}

func TestParseCRSMAndSPN(t *testing.T) {
	sw1, sw2, data, ok := parseCRSM([]string{`+CRSM: 144,0,"01546573744E6574FFFFFFFFFFFFFFFFFF"`})
	if !ok || sw1 != 144 || sw2 != 0 {
		t.Fatalf("crsm %d %d %v", sw1, sw2, ok)
	}
	if spn := parseSPN(data); spn != "TestNet" {
		t.Errorf("spn %q", spn)
	}
	if _, _, _, ok := parseCRSM([]string{"+CRSM: x"}); ok {
		t.Error("garbage accepted")
	}
	if n := parseEFAD("00000003"); n != 3 {
		t.Errorf("EF_AD mnc len %d", n)
	}
}

func TestParseCNUMAndPIN(t *testing.T) {
	got := parseCNUM([]string{`+CNUM: "","+447700900123",145`, `+CNUM: "Voice","447700900124",145`, `+CNUM: "","",129`})
	if fmt.Sprint(got) != "[+447700900123 +447700900124]" {
		t.Errorf("cnum %v", got)
	}
	for in, want := range map[string]string{"+CPIN: READY": "ready", "+CPIN: SIM PIN": "pin-required",
		"+CPIN: SIM PUK": "puk-required", "": "unknown"} {
		if got := simState([]string{in}); got != want {
			t.Errorf("cpin %q = %q, want %q", in, got, want)
		}
	}
}

func TestSignalQuality(t *testing.T) {
	for in, want := range map[string]string{"+CSQ: 31,99": "100", "+CSQ: 0,0": "0", "+CSQ: 20,99": "64",
		"+CSQ: 99,99": "<nil>", "+CSQ: x": "<nil>"} {
		q := signalQuality([]string{in})
		got := "<nil>"
		if q != nil {
			got = fmt.Sprint(*q)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", in, got, want)
		}
	}
}

func TestParseReg(t *testing.T) {
	tests := []struct {
		line, prefix string
		urc          bool
		stat, act    string
		ok           bool
	}{
		{`+CREG: 2,1,"1A2B","01C3D4E",7`, "+CREG:", false, "home", "lte", true},
		{`+CEREG: 0,5`, "+CEREG:", false, "roaming", "", true},
		{`+CEREG: 1`, "+CEREG:", true, "home", "", true},
		{`+CGREG: 2,"1A2B","01C3D4E",2`, "+CGREG:", true, "searching", "umts", true},
		{`+CREG: 5,"1A2B","01C3D4E",2`, "+CREG:", true, "roaming", "umts", true},
		{`+CREG: 2,3`, "+CREG:", false, "denied", "", true},
		{`+CREG: x`, "+CREG:", false, "", "", false},
	}
	for _, tt := range tests {
		stat, act, ok := parseReg(tt.line, tt.prefix, tt.urc)
		if stat != tt.stat || act != tt.act || ok != tt.ok {
			t.Errorf("%s: got %q %q %v, want %q %q %v", tt.line, stat, act, ok, tt.stat, tt.act, tt.ok)
		}
	}
}

func TestHomeOperator(t *testing.T) {
	for _, tt := range []struct {
		imsi string
		mnc  int
		want string
	}{{"001010123456789", 2, "00101"}, {"310260123456789", 0, "310260"}, {"234150123456789", 0, "23415"},
		{"234150123456789", 3, "234150"}, {"12", 0, ""}} {
		if got := homeOperator(tt.imsi, tt.mnc); got != tt.want {
			t.Errorf("%s/%d = %q, want %q", tt.imsi, tt.mnc, got, tt.want)
		}
	}
}

func TestParseCGCONTRDP(t *testing.T) {
	v4, v6 := parseCGCONTRDP([]string{
		`+CGCONTRDP: 1,5,"internet","100.64.1.2.255.255.255.0","100.64.1.1","100.64.1.53","100.64.1.54"`,
		`+CGCONTRDP: 1,5,"internet","32.1.13.184.0.100.0.1.0.0.0.0.0.0.0.2.255.255.255.255.255.255.255.255.0.0.0.0.0.0.0.0","","32.1.13.184.0.100.0.1.0.0.0.0.0.0.0.83"`,
	})
	want4 := &modem.IPConfig{Method: "static", Address: "100.64.1.2", Prefix: 24, Gateway: "100.64.1.1", DNS: []string{"100.64.1.53", "100.64.1.54"}}
	if !reflect.DeepEqual(v4, want4) {
		t.Errorf("v4 %+v", v4)
	}
	want6 := &modem.IPConfig{Method: "static", Address: "2001:db8:64:1::2", Prefix: 64, DNS: []string{"2001:db8:64:1::53"}}
	if !reflect.DeepEqual(v6, want6) {
		t.Errorf("v6 %+v", v6)
	}
	// "addr mask" with a space, as some vendors write it.
	v4, _ = parseCGCONTRDP([]string{`+CGCONTRDP: 1,5,"apn","10.0.0.2 255.255.255.252","10.0.0.1"`})
	if v4 == nil || v4.Prefix != 30 || v4.Gateway != "10.0.0.1" {
		t.Errorf("space form: %+v", v4)
	}
	if v4, v6 := parseCGCONTRDP([]string{"+CGCONTRDP: 1,5,\"apn\",\"junk\""}); v4 != nil || v6 != nil {
		t.Error("junk accepted")
	}
	v4, _ = parseCGPADDR([]string{`+CGPADDR: 1,"100.64.7.9"`})
	if v4 == nil || v4.Address != "100.64.7.9" || v4.Prefix != 32 {
		t.Errorf("cgpaddr %+v", v4)
	}
}
