//go:build !linux

package tap

func create(Config) (Device, error) { return nil, ErrUnsupported }

func open(Config) (Device, error) { return nil, ErrUnsupported }

func adoptFDs(Config, []int) (Device, error) { return nil, ErrUnsupported }
