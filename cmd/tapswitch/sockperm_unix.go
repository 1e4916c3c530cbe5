//go:build unix

package main

import (
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// socketGroup returns the group of the socket at path, by name where it
// has one, and whether the socket is open to that group.
func socketGroup(path string) (group string, open bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || fi.Mode().Perm()&0o060 != 0o060 {
		return "", false, nil
	}
	gid := strconv.FormatUint(uint64(st.Gid), 10)
	if g, err := user.LookupGroupId(gid); err == nil {
		return g.Name, true, nil
	}
	return gid, true, nil
}
