//go:build !unix

package indexer

import "os"

// fileIdentity returns zeros: there are no inodes here, so a cursor cannot tell a rotated file from a new one
// and an AuditFollower's Start is taken to be in the file at its Path.
func fileIdentity(os.FileInfo) (dev, ino uint64) { return 0, 0 }
