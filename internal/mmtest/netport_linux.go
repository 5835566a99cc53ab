package mmtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// USBModem describes one fake USB modem that ModemManager, and only
// ModemManager, sees: a tty (a pseudo-terminal a simulator serves) and a
// net port (a veth named NetIf in the device namespace), grouped under one
// USB device in a fake sysfs. The vendor id picks ModemManager's plugin
// (with +CGMI/+CGMM): u-blox 1546 (PID 1102 has no port-ready delay in the
// shipped udev rules), Nokia 0421 for the Icera path.
type USBModem struct {
	TTY          string // the pty slave (or a symlink to it) the simulator serves
	VID, PID     string // hex, e.g. "1546", "1102"
	Manufacturer string // USB strings
	Product      string
	NetIf        string // net port name in the device namespace, e.g. "wwan0"
	// CarrierAddr, when set (e.g. "100.64.1.1/24"), is put on the veth's
	// peer in the carrier namespace, so traffic over NetIf has somewhere to go.
	CarrierAddr string
}

// NetBench is ModemManager running in a network namespace of its own
// ("device", holding each modem's net port), and a mount namespace where
// /sys is a fake USB tree and /dev holds only the modems' ttys, started
// with --initial-kernel-events announcing those ports (no udev, no
// Test.SetProfile: vendor plugins need real-looking ports). This is the
// recipe of shared/reference/modemmanager-netport.md. Needs root.
type NetBench struct {
	Daemon  *Daemon
	Device  string // network namespace holding the net ports (ip netns name)
	Carrier string // network namespace holding their veth peers
	Modems  []USBModem
}

// StartNetBench builds the namespaces, the fake sysfs and starts
// ModemManager on bus. It skips the test when not root or when ip/unshare
// are missing. Everything is removed in t.Cleanup, also on failure.
func StartNetBench(t testing.TB, bus *Bus, modems ...USBModem) *NetBench {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network and mount namespaces for ModemManager's net ports")
	}
	Require(t, "ip", "unshare", "mount", "ModemManager")
	suffix := randHex(3)
	nb := &NetBench{Device: "mmt-dev-" + suffix, Carrier: "mmt-car-" + suffix, Modems: modems}
	for _, ns := range []string{nb.Device, nb.Carrier} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	dir, err := os.MkdirTemp("", "mmnet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sys := filepath.Join(dir, "sys")
	var events, mounts strings.Builder
	for i, m := range modems {
		peer := fmt.Sprintf("c%s", m.NetIf)
		run(t, "ip", "link", "add", m.NetIf, "netns", nb.Device, "type", "veth", "peer", "name", peer, "netns", nb.Carrier)
		run(t, "ip", "-n", nb.Carrier, "link", "set", peer, "up")
		if m.CarrierAddr != "" {
			run(t, "ip", "-n", nb.Carrier, "addr", "add", m.CarrierAddr, "dev", peer)
		}
		tty := fmt.Sprintf("ttyACM%d", i)
		if err := fakeUSB(sys, i, tty, m); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&events, "action=add,subsystem=tty,name=%s\naction=add,subsystem=net,name=%s\n", tty, m.NetIf)
		real, err := filepath.EvalSymlinks(m.TTY)
		if err != nil {
			t.Fatalf("tty of modem %d: %v", i, err)
		}
		fmt.Fprintf(&mounts, "touch %[1]s/dev/%[2]s && mount --bind %[3]s %[1]s/dev/%[2]s && ", dir, tty, shellQuote(real))
	}
	for _, d := range []string{"bus/usb/drivers/cdc_acm", "bus/usb/drivers/cdc_ether", "bus/usb/drivers/usb", "class/net", "class/tty"} {
		if err := os.MkdirAll(filepath.Join(sys, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	eventsFile := filepath.Join(dir, "kernel-events")
	if err := os.WriteFile(eventsFile, []byte(events.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	StartPolkit(t, bus) // ReportKernelEvent (unplug, replug) asks polkit
	d := NewDaemon(t, bus, "--no-auto-scan", "--initial-kernel-events="+eventsFile)
	mmPath, _ := lookPath("ModemManager")
	// The script runs in ModemManager's own mount namespace: only it sees
	// the fake /sys and /dev. The final exec keeps one process, so the
	// harness's pid and death signal are ModemManager's.
	script := fmt.Sprintf("mount -t tmpfs tmpfs %[1]s/dev && %[2]s mount --rbind %[1]s/dev /dev && mount --bind %[3]s /sys && exec %[4]s \"$@\"",
		dir, mounts.String(), sys, mmPath)
	d.Cmd = func(c *exec.Cmd) {
		args := append([]string{"ip", "netns", "exec", nb.Device, "unshare", "--mount", "--propagation", "private",
			"sh", "-c", script, "ModemManager"}, d.Args...)
		ipPath, _ := lookPath("ip")
		c.Path, c.Args = ipPath, args
	}
	d.Start()
	nb.Daemon = d
	return nb
}

// fakeUSB writes one USB device with a CDC-ACM tty interface (1.0) and a
// CDC-ECM net interface (1.4) under sys, as the kernel would show it.
func fakeUSB(sys string, n int, tty string, m USBModem) error {
	dev := fmt.Sprintf("devices/pci0000:00/0000:00:14.0/usb1/1-%d", n+1)
	ifTTY := fmt.Sprintf("%s/1-%d:1.0", dev, n+1)
	ifNet := fmt.Sprintf("%s/1-%d:1.4", dev, n+1)
	files := map[string]string{
		dev + "/idVendor": m.VID, dev + "/idProduct": m.PID, dev + "/manufacturer": m.Manufacturer,
		dev + "/product": m.Product, dev + "/serial": fmt.Sprintf("SIM%04d", n+1), dev + "/bcdDevice": "0100",
		dev + "/busnum": "1", dev + "/devnum": fmt.Sprint(n + 2),
		ifTTY + "/bInterfaceClass": "02", ifTTY + "/bInterfaceSubClass": "02", ifTTY + "/bInterfaceProtocol": "01", ifTTY + "/bInterfaceNumber": "00",
		ifNet + "/bInterfaceClass": "02", ifNet + "/bInterfaceSubClass": "06", ifNet + "/bInterfaceProtocol": "00", ifNet + "/bInterfaceNumber": "04",
		ifTTY + "/tty/" + tty + "/uevent":     "DEVNAME=" + tty,
		ifNet + "/net/" + m.NetIf + "/uevent": "INTERFACE=" + m.NetIf,
	}
	links := map[string]string{
		dev + "/driver":                          "bus/usb/drivers/usb",
		dev + "/subsystem":                       "bus/usb",
		ifTTY + "/driver":                        "bus/usb/drivers/cdc_acm",
		ifTTY + "/subsystem":                     "bus/usb",
		ifNet + "/driver":                        "bus/usb/drivers/cdc_ether",
		ifNet + "/subsystem":                     "bus/usb",
		ifTTY + "/tty/" + tty + "/subsystem":     "class/tty",
		ifNet + "/net/" + m.NetIf + "/subsystem": "class/net",
		"class/tty/" + tty:                       ifTTY + "/tty/" + tty,
		"class/net/" + m.NetIf:                   ifNet + "/net/" + m.NetIf,
	}
	for name, content := range files {
		p := filepath.Join(sys, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			return err
		}
	}
	for name, target := range links {
		p := filepath.Join(sys, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		rel, err := filepath.Rel(filepath.Dir(p), filepath.Join(sys, target))
		if err != nil {
			return err
		}
		if err := os.Symlink(rel, p); err != nil {
			return err
		}
	}
	return nil
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
