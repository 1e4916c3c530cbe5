//go:build !linux

package main

import "os/exec"

// The benchmark needs Linux network namespaces and refuses to start
// elsewhere (see checkTools); these stubs only keep the package building.

func setProcAttr(cmd *exec.Cmd) {}

func becomeSubreaper() {}

func clockTicks() float64 { return 100 }

func killGroup(pid int) {}
