package packaging_test

import (
	"os"
	"strconv"
	"syscall"
)

// ownerUID is the numeric owner of a file, as text.
func ownerUID(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return strconv.FormatUint(uint64(st.Uid), 10)
	}
	return "?"
}
