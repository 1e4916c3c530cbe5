//go:build !linux

package tap

func create(Config) (Device, error) { return nil, ErrUnsupported }
