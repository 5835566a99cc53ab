package at

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPortOwner(t *testing.T) {
	// A real character device, so the udev database key can be derived.
	const dev = "/dev/null"
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Skip(err)
	}
	key := fmt.Sprintf("c%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	tests := []struct {
		name    string
		mm      bool   // a ModemManager process exists
		fds     string // "open": its fd table shows the device; "hidden": unreadable; "": other files
		udev    string
		refused bool
	}{
		{"no ModemManager", false, "", "E:ID_MM_CANDIDATE=1\n", false},
		{"ModemManager holds it", true, "open", "", true},
		{"ModemManager holds something else", true, "", "E:ID_MM_CANDIDATE=1\n", false},
		{"unprivileged, candidate", true, "hidden", "E:ID_MM_CANDIDATE=1\n", true},
		{"unprivileged, ignored by rule", true, "hidden", "E:ID_MM_CANDIDATE=1\nE:ID_MM_PORT_IGNORE=1\n", false},
		{"unprivileged, not a candidate", true, "hidden", "E:ID_VENDOR=x\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			proc, udev := filepath.Join(root, "proc"), filepath.Join(root, "udev")
			os.MkdirAll(udev, 0o755)
			os.WriteFile(filepath.Join(udev, key), []byte(tt.udev), 0o644)
			comm := "bash"
			if tt.mm {
				comm = "ModemManager"
			}
			pdir := filepath.Join(proc, "4242")
			os.MkdirAll(pdir, 0o755)
			os.WriteFile(filepath.Join(pdir, "comm"), []byte(comm+"\n"), 0o644)
			switch tt.fds {
			case "open":
				os.MkdirAll(filepath.Join(pdir, "fd"), 0o755)
				os.Symlink(dev, filepath.Join(pdir, "fd", "7"))
			case "":
				os.MkdirAll(filepath.Join(pdir, "fd"), 0o755)
				os.Symlink("/dev/zero", filepath.Join(pdir, "fd", "7"))
			case "hidden": // no fd directory: as unreadable as another user's
			}
			err := portOwner(dev, proc, udev)
			var owned *ErrPortOwned
			if got := errors.As(err, &owned); got != tt.refused {
				t.Fatalf("refused = %v (%v), want %v", got, err, tt.refused)
			}
			if tt.refused && owned.PID != 4242 {
				t.Errorf("pid %d", owned.PID)
			}
		})
	}
}
