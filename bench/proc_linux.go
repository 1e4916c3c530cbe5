package main

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// setProcAttr puts the child in its own process group, so the terminal's
// Ctrl-C reaches only this program, and has the kernel send it SIGTERM if
// this program dies without cleaning up (killed with SIGKILL, say).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// becomeSubreaper makes daemons that detach from us (ovsdb-server and
// ovs-vswitchd --detach double-fork) our children rather than init's, so
// we can reap them: an init that does not reap, as in some minimal VMs
// and containers, would otherwise keep them as zombies.
func becomeSubreaper() {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		debugf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
}
