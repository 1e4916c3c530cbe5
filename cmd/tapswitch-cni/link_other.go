//go:build !linux

package main

import (
	"fmt"
	"runtime"
)

func inspectLink(netnsPath, ifname string) (linkState, error) {
	return linkState{}, fmt.Errorf("reading interface %s in %s: not implemented on %s", ifname, netnsPath, runtime.GOOS)
}
