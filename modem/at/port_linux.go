package at

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrPortOwned means ModemManager holds (or will take) the port: two
// programs writing AT commands to one port corrupt each other's dialogues.
type ErrPortOwned struct {
	Device string
	PID    int
	Why    string // how it was seen
}

func (e *ErrPortOwned) Error() string {
	return fmt.Sprintf("%s is ModemManager's (pid %d, %s): hand the port to simproof with the udev property ID_MM_PORT_IGNORE=1, or use the modemmanager backend",
		e.Device, e.PID, e.Why)
}

// checkPortFree refuses a port a running ModemManager has open or will
// probe.
func checkPortFree(device string) error {
	return portOwner(device, "/proc", "/run/udev/data")
}

// portOwner looks for a running ModemManager. Root sees its open files and
// refuses the port it holds. simproofd running as its own user (the systemd
// unit) cannot read another user's /proc/PID/fd; then the udev database
// decides: a port ModemManager considers a candidate (ID_MM_CANDIDATE=1)
// and nobody told it to ignore (ID_MM_PORT_IGNORE=1) is refused.
func portOwner(device, proc, udev string) error {
	target, err := filepath.EvalSymlinks(device)
	if err != nil {
		return nil // the open that follows reports a missing device better
	}
	entries, _ := os.ReadDir(proc)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "ModemManager" {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(proc, e.Name(), "fd"))
		if err == nil {
			for _, fd := range fds {
				if l, err := os.Readlink(filepath.Join(proc, e.Name(), "fd", fd.Name())); err == nil && l == target {
					return &ErrPortOwned{Device: device, PID: pid, Why: "it has the port open"}
				}
			}
			continue
		}
		props := udevProps(udev, target)
		if props["ID_MM_CANDIDATE"] == "1" && props["ID_MM_PORT_IGNORE"] != "1" && props["ID_MM_DEVICE_IGNORE"] != "1" {
			return &ErrPortOwned{Device: device, PID: pid, Why: "udev marks the port a ModemManager candidate"}
		}
	}
	return nil
}

// udevProps reads a character device's properties ("E:KEY=value" lines)
// from the udev database, keyed c<major>:<minor>.
func udevProps(udev, dev string) map[string]string {
	var st unix.Stat_t
	if unix.Stat(dev, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return nil
	}
	f, err := os.Open(filepath.Join(udev, fmt.Sprintf("c%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))))
	if err != nil {
		return nil
	}
	defer f.Close()
	props := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "E:"), "="); ok && strings.HasPrefix(sc.Text(), "E:") {
			props[k] = v
		}
	}
	return props
}
