//go:build unix

package auth

import (
	"os"
	"slices"
	"syscall"
)

// groupIsOurs reports whether the file's group is one the process belongs to. A Kubernetes Secret volume with
// fsGroup makes its files 0440 root:<fsGroup>, and kiem runs in that group: readable by "group" then means
// readable by kiem only, which must not raise the warning meant for files others can read.
func groupIsOurs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	gid := int(st.Gid)
	if gid == os.Getegid() {
		return true
	}
	groups, err := os.Getgroups()
	return err == nil && slices.Contains(groups, gid)
}
