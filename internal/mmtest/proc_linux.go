package mmtest

import "syscall"

// childAttr makes a child die with the test binary, so a crashed test
// leaves no daemon behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
