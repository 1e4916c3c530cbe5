//go:build !linux

package main

import (
	"fmt"
	"runtime"
)

// The scale suite needs Linux network namespaces and refuses to start
// elsewhere (see checkTools); these stubs only keep the package building.

var errScaleUnsupported = fmt.Errorf("scale suite: not implemented on %s", runtime.GOOS)

func loopbackUp(string) error { return errScaleUnsupported }

type packetSender struct{}

func openPacketSender(string, string) (*packetSender, error) { return nil, errScaleUnsupported }

func (*packetSender) send([]byte) error { return errScaleUnsupported }

func (*packetSender) close() error { return nil }
