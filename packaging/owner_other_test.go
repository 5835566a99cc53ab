//go:build !linux

package packaging_test

import "os"

// ownerUID is unknown off Linux (the tests that ask skip there anyway).
func ownerUID(os.FileInfo) string { return "?" }
