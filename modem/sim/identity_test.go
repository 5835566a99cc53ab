package sim_test

import (
	"strings"
	"testing"

	"github.com/simproof/simproof/modem/sim"
)

// luhnValid is written here independently of the package's WithLuhn.
func luhnValid(s string) bool {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return len(s) > 1 && sum%10 == 0
}

func TestLuhnReference(t *testing.T) {
	// Values from the ModemManager reference dialogue, valid on real hardware.
	for _, s := range []string{"356938035643809", "89014103211118510720"} {
		if !luhnValid(s) {
			t.Errorf("checker rejects %s", s)
		}
		if got := sim.WithLuhn(s[:len(s)-1]); got != s {
			t.Errorf("WithLuhn(%s) = %s, want %s", s[:len(s)-1], got, s)
		}
	}
	if luhnValid("356938035643808") {
		t.Error("checker accepts a wrong check digit")
	}
}

func TestDefaultIdentity(t *testing.T) {
	seen := map[string]int{}
	for n := 0; n < 1000; n++ {
		id := sim.DefaultIdentity(n)
		checks := []struct {
			what string
			ok   bool
		}{
			{"IMEI 15 digits, Luhn", len(id.IMEI) == 15 && luhnValid(id.IMEI)},
			{"ICCID 89..., Luhn", strings.HasPrefix(id.ICCID, "89") && len(id.ICCID) >= 19 && luhnValid(id.ICCID)},
			{"IMSI 001 01", len(id.IMSI) == 15 && strings.HasPrefix(id.IMSI, id.OperatorID) && id.OperatorID == "00101"},
			{"MSISDN drama range", strings.HasPrefix(id.MSISDN, "+447700900") && len(id.MSISDN) == 13},
			{"signal", id.RSSI >= 0 && id.RSSI <= 31},
		}
		for _, c := range checks {
			if !c.ok {
				t.Fatalf("DefaultIdentity(%d) %s: %+v", n, c.what, id)
			}
		}
		for _, v := range []string{id.IMEI, id.ICCID, id.IMSI, id.MSISDN} {
			if prev, dup := seen[v]; dup {
				t.Fatalf("DefaultIdentity(%d) repeats %s of modem %d", n, v, prev)
			}
			seen[v] = n
		}
	}
}

func TestDefaultBearer(t *testing.T) {
	b0, b1 := sim.DefaultBearer(0), sim.DefaultBearer(1)
	if b0.IPv4.String() != "100.64.1.2/24" || b0.Gateway4.String() != "100.64.1.1" || len(b0.DNS4) != 2 {
		t.Errorf("DefaultBearer(0) = %+v", b0)
	}
	if b1.IPv4.Addr() == b0.IPv4.Addr() || !b1.IPv4.Addr().IsValid() {
		t.Errorf("DefaultBearer(1) = %+v", b1)
	}
	cgnat := sim.DefaultBearer(300).IPv4.Addr().As4()
	if cgnat[0] != 100 || cgnat[1]&0xC0 != 64 {
		t.Errorf("DefaultBearer(300) = %v, outside 100.64.0.0/10", sim.DefaultBearer(300).IPv4)
	}
}
