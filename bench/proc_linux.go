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

// atClkTck is AT_CLKTCK of <elf.h>: the auxiliary vector's entry for
// USER_HZ, which glibc's sysconf(_SC_CLK_TCK) returns.
const atClkTck = 17

// clockTicks returns USER_HZ, the unit of the times in /proc/PID/stat and
// /proc/stat: 100 on every architecture Linux runs on today, which is
// the answer when the auxiliary vector cannot be read.
func clockTicks() float64 {
	if auxv, err := unix.Auxv(); err == nil {
		for _, kv := range auxv {
			if kv[0] == atClkTck && kv[1] > 0 {
				return float64(kv[1])
			}
		}
	}
	return 100
}

// killGroup kills the process group led by pid: a child started by
// command and whatever it started in turn.
func killGroup(pid int) {
	if err := unix.Kill(-pid, unix.SIGKILL); err != nil {
		debugf("kill process group %d: %v", pid, err)
	}
}
