//go:build unix

package graph

import (
	"io/fs"
	"syscall"
)

// allocatedBlocks returns the bytes the filesystem allocated for the file.
func allocatedBlocks(info fs.FileInfo) (int64, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(st.Blocks) * 512, true
}
