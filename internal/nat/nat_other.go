//go:build !linux

package nat

import (
	"fmt"
	"runtime"
)

// system stands in for the Linux implementation; New refuses to make one.
type system struct{}

func newSystem(config) (*system, error) {
	return nil, fmt.Errorf("%w (GOOS %s): nftables is Linux only", ErrNotSupported, runtime.GOOS)
}

func (*system) addNetwork(Network) error            { return ErrNotSupported }
func (*system) removeNetwork(string) error          { return ErrNotSupported }
func (*system) networks() ([]string, error)         { return nil, ErrNotSupported }
func (*system) dropped() (map[string]uint64, error) { return nil, ErrNotSupported }
func (*system) close() error                        { return ErrNotSupported }
