package main

import "fmt"

// permissionHint says what to do when the socket at path refused a
// connection for lack of permission, naming the group that may use it
// when the socket shows one.
func permissionHint(path string) string {
	group, open, err := socketGroup(path)
	switch {
	case err != nil:
		return "run as root, or as a member of the group tapswitchd was started with (--group)"
	case open:
		return fmt.Sprintf("the socket is for root and group %s: run as root, or ask an administrator to add you to group %s (then log in again)", group, group)
	}
	return "the socket is for root only: run as root, or have tapswitchd started with --group GROUP and join that group"
}
