//go:build !linux

package mmtest

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
