package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machine describes where the numbers were taken.
type machine struct {
	NProc    int
	MemTotal string
	Kernel   string
	CPU      string
	Go       string
	Curl     string
	Commit   string
}

func describeMachine() machine {
	m := machine{NProc: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " +
			unix.ByteSliceToString(u.Machine[:])
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := procStatusKBFile("/proc/meminfo", "MemTotal"); err == nil {
		m.MemTotal = fmtKB(kb)
	}
	if out, err := exec.Command("curl", "--version").Output(); err == nil {
		m.Curl, _, _ = strings.Cut(string(out), "\n")
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// pressure is the kernel's pressure-stall "some" totals: how long at least
// one task waited for a CPU, or for IO.
type pressure struct {
	CPU, IO time.Duration
	Load    string // /proc/loadavg's first three fields
	At      time.Time
}

func readPressure() pressure {
	p := pressure{At: time.Now()}
	for _, k := range []struct {
		file string
		into *time.Duration
	}{{"/proc/pressure/cpu", &p.CPU}, {"/proc/pressure/io", &p.IO}} {
		raw, err := os.ReadFile(k.file)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(string(raw), "\n")
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				us, _ := strconv.ParseInt(v, 10, 64)
				*k.into = time.Duration(us) * time.Microsecond
			}
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(raw))
		if len(f) >= 3 {
			p.Load = strings.Join(f[:3], " ")
		}
	}
	return p
}
