package at

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrPortOwned means ModemManager holds the port: two programs writing AT
// commands to one port corrupt each other's dialogues.
type ErrPortOwned struct {
	Device string
	PID    int
}

func (e *ErrPortOwned) Error() string {
	return fmt.Sprintf("%s is held by ModemManager (pid %d): hand the port to simproof with the udev property ID_MM_PORT_IGNORE=1, or use the modemmanager backend", e.Device, e.PID)
}

// checkPortFree refuses a port that a running ModemManager has open.
func checkPortFree(device string) error {
	target, err := filepath.EvalSymlinks(device)
	if err != nil {
		return nil // the open that follows reports a missing device better
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "ModemManager" {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && l == target {
				return &ErrPortOwned{Device: device, PID: pid}
			}
		}
	}
	return nil
}
