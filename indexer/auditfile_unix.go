//go:build unix

package indexer

import (
	"os"
	"syscall"
)

// fileIdentity returns the device and inode of fi's file, which a rename keeps, so that a cursor recognises
// its file after a rotation; zeros if fi has no stat data.
func fileIdentity(fi os.FileInfo) (dev, ino uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	// Conversions because the field types differ between unix platforms.
	return uint64(st.Dev), uint64(st.Ino)
}
