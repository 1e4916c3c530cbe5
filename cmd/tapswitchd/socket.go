package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/tapswitch/tapswitch/internal/apiserver"
)

// socketAccess resolves --group, a group's name or GID, to who may use
// the API socket; empty means root only. A name must be in the group
// database; a GID need not be.
func socketAccess(group string) (apiserver.Access, error) {
	if group == "" {
		return apiserver.RootOnly, nil
	}
	if g, err := user.LookupGroup(group); err == nil {
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return apiserver.Access{}, fmt.Errorf("--group %q: group database gives GID %q", group, g.Gid)
		}
		return apiserver.Access{GID: gid, Group: g.Name}, nil
	}
	gid, err := strconv.ParseUint(group, 10, 32)
	if err != nil || gid == math.MaxUint32 {
		// Not a number, or (gid_t)-1, which chown takes as "no change".
		return apiserver.Access{}, fmt.Errorf("--group %q: no such group; give the name or GID of an existing group (create one with 'groupadd %s')", group, group)
	}
	a := apiserver.Access{GID: int(gid)}
	if g, err := user.LookupGroupId(group); err == nil {
		a.Group = g.Name
	}
	return a, nil
}

// warnUnreachable logs when a directory on the way to the socket in dir
// does not let the members of access's group through: they could not
// connect, whatever the socket's mode. Only mode bits are read (ACLs
// may open a directory they close), so this warns and does not refuse.
func warnUnreachable(dir string, access apiserver.Access) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return
		}
		perm := fi.Mode().Perm()
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return
		}
		if perm&0o001 == 0 && (perm&0o010 == 0 || st.Gid != uint32(access.GID)) {
			slog.Warn("the socket's group cannot reach it: a directory on its path is closed to the group; open it (chmod o+x, or chgrp and chmod g+x) or choose another --socket",
				"group", access.String(), "dir", d, "mode", fmt.Sprintf("%04o", perm), "uid", st.Uid, "gid", st.Gid)
			return
		}
		if d == "/" || d == "." {
			return
		}
	}
}
