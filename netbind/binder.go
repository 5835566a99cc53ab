package netbind

import (
	"errors"
	"fmt"
	"sync"

	"github.com/simproof/simproof/modem"
)

// Manage says whether netbind configures a bearer's interface.
type Manage string

const (
	// ManageAuto configures the interface unless it already has a global
	// address netbind did not add: then someone else (NetworkManager, the
	// modem backend) owns it and it is only verified.
	ManageAuto Manage = "auto"
	// ManageAlways configures the interface.
	ManageAlways Manage = "always"
	// ManageNever only verifies that the interface is up and has an address
	// of each configured family.
	ManageNever Manage = "never"
)

// Defaults for Options' zero values.
const (
	DefaultTableBase    = 1000
	DefaultMaxSlots     = 256
	DefaultRulePriority = 10000
)

// Options configure a Binder; the zero value works.
type Options struct {
	// TableBase is the first routing table; modem slot s uses TableBase+s.
	TableBase int
	// MaxSlots bounds the number of tables (and so of modems).
	MaxSlots int
	// RulePriority is the priority of the "oif <interface>" rules; the
	// "from <address>" rules use RulePriority+1. Both must sort before the
	// main table's rule (32766).
	RulePriority int
	// NetNS is the path of the network namespace to configure ("" = the
	// process's own). Tests point it at a namespace of their own.
	NetNS string
}

// Config is one bearer to apply.
type Config struct {
	Interface string
	// ModemID selects the routing table through Slot when Table is 0.
	ModemID string
	// IPv4 and IPv6 are the bearer's families; either may be nil (an
	// IPv6-only bearer has IPv4 nil). MTU is taken from IPv4, else IPv6.
	IPv4, IPv6 *modem.IPConfig
	// Table overrides the slot's table.
	Table int
	// Manage is the policy; "" means ManageAuto.
	Manage Manage
}

// Applied describes a bearer as Apply left it. Pass it to Remove.
type Applied struct {
	Interface string
	Table     int  // 0 when not managed
	Managed   bool // false: verified only, nothing was changed
}

// Binder applies and removes bearer configurations. Its methods are safe for
// concurrent use. It remembers what it added to each interface, so Remove
// takes back exactly that, and applying twice changes nothing.
type Binder struct {
	opts Options

	mu     sync.Mutex
	slots  map[string]int     // modem ID → slot
	tables map[int]string     // table → interface using it
	owned  map[string]*record // interface → what this Binder added
}

// NewBinder returns a Binder; zero fields of opts take the defaults.
func NewBinder(opts Options) *Binder {
	if opts.TableBase == 0 {
		opts.TableBase = DefaultTableBase
	}
	if opts.MaxSlots == 0 {
		opts.MaxSlots = DefaultMaxSlots
	}
	if opts.RulePriority == 0 {
		opts.RulePriority = DefaultRulePriority
	}
	return &Binder{opts: opts, slots: map[string]int{}, tables: map[int]string{}, owned: map[string]*record{}}
}

// ErrNoSlot is returned when every routing-table slot is taken.
var ErrNoSlot = errors.New("no free routing table slot")

// Slot returns the modem's slot, allocating the lowest free one on first
// use. It is stable for the Binder's lifetime (until Release).
func (b *Binder) Slot(modemID string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.slotLocked(modemID)
}

func (b *Binder) slotLocked(modemID string) (int, error) {
	if s, ok := b.slots[modemID]; ok {
		return s, nil
	}
	used := make(map[int]bool, len(b.slots))
	for _, s := range b.slots {
		used[s] = true
	}
	for s := range b.opts.MaxSlots {
		if !used[s] {
			b.slots[modemID] = s
			return s, nil
		}
	}
	return -1, fmt.Errorf("modem %s: %w (%d in use)", modemID, ErrNoSlot, len(b.slots))
}

// Table returns the routing table of the modem's slot.
func (b *Binder) Table(modemID string) (int, error) {
	s, err := b.Slot(modemID)
	if err != nil {
		return 0, err
	}
	return b.opts.TableBase + s, nil
}

// Release frees the modem's slot (after Remove, when the modem is gone).
func (b *Binder) Release(modemID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.slots, modemID)
}

// validate checks the options once per call; returned errors say which.
func (o Options) validate() error {
	last := o.TableBase + o.MaxSlots - 1
	if o.TableBase <= 0 || o.MaxSlots <= 0 {
		return fmt.Errorf("table base %d, %d slots: must be positive", o.TableBase, o.MaxSlots)
	}
	// 253..255 are the kernel's default, main and local tables.
	if o.TableBase <= 255 && last >= 253 {
		return fmt.Errorf("tables %d..%d overlap the kernel's reserved tables 253..255", o.TableBase, last)
	}
	if o.RulePriority <= 0 || o.RulePriority+1 >= 32766 {
		return fmt.Errorf("rule priority %d must sort before the main table's rule (32766)", o.RulePriority)
	}
	return nil
}

// desired is the state Apply converges an interface to.
type desired struct {
	want   family
	v4, v6 *bearerAddr
	mtu    int
}

func (c Config) parse() (desired, error) {
	var d desired
	if c.IPv4 != nil && c.IPv4.Address != "" {
		b, err := parseIPConfig(c.IPv4, fam4)
		if err != nil {
			return d, fmt.Errorf("IPv4: %w", err)
		}
		d.v4, d.want = &b, d.want|fam4
		d.mtu = c.IPv4.MTU
	}
	if c.IPv6 != nil && c.IPv6.Address != "" {
		b, err := parseIPConfig(c.IPv6, fam6)
		if err != nil {
			return d, fmt.Errorf("IPv6: %w", err)
		}
		d.v6, d.want = &b, d.want|fam6
		if d.mtu == 0 {
			d.mtu = c.IPv6.MTU
		}
	}
	minMTU := 576
	if d.v6 != nil {
		minMTU = 1280 // below it the kernel turns IPv6 off on the link
	}
	if d.mtu != 0 && (d.mtu < minMTU || d.mtu > 65535) {
		return d, fmt.Errorf("MTU %d out of range %d..65535", d.mtu, minMTU)
	}
	return d, nil
}
