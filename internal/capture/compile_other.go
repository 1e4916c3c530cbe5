//go:build !cgo || windows

package capture

import (
	"fmt"

	"golang.org/x/net/bpf"
)

func compile(expr string) ([]bpf.RawInstruction, error) {
	return nil, fmt.Errorf("%w %q: %w", ErrFilter, expr, ErrNoCompiler)
}
