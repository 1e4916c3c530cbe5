package capture

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/net/bpf"
)

// MaxFilterLen bounds a filter expression. libpcap's optimiser works on
// the whole program at once and its time grows faster than the
// expression; 1,024 bytes is ten times the longest filter one types,
// and compiles in well under a millisecond.
const MaxFilterLen = 1024

// ErrFilter is the class of every error of Compile: an expression that is
// not a filter, with the compiler's reason.
var ErrFilter = errors.New("capture filter")

// ErrNoCompiler: this build of the daemon has no filter compiler (it was
// built without cgo, which libpcap's compiler needs).
var ErrNoCompiler = errors.New("this tapswitchd was built without libpcap (CGO_ENABLED=0): it captures without filters only")

// Filter is a compiled tcpdump filter. Match is safe for concurrent use
// and allocates nothing, so it may run on the forwarding path.
type Filter struct {
	expr string
	prog []bpf.Instruction
	vm   *bpf.VM
}

// Compile compiles expr, in tcpdump's filter language (pcap-filter(7)),
// for Ethernet frames. An empty expr is an error: no filter is a nil
// *Filter.
func Compile(expr string) (*Filter, error) {
	if err := checkExpr(expr); err != nil {
		return nil, err
	}
	raw, err := compile(expr)
	if err != nil {
		return nil, err
	}
	return fromRaw(expr, raw)
}

// checkExpr refuses what libpcap should never see: nothing, too much, a
// NUL (which would end the C string early) or another control character.
func checkExpr(expr string) error {
	switch {
	case strings.TrimSpace(expr) == "":
		return fmt.Errorf("%w: empty expression", ErrFilter)
	case len(expr) > MaxFilterLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrFilter, len(expr), MaxFilterLen)
	}
	for i, r := range expr {
		if unicode.IsControl(r) && r != '\t' && r != '\n' {
			return fmt.Errorf("%w %q: control character %U at byte %d", ErrFilter, expr, r, i)
		}
	}
	return nil
}

// fromRaw checks a compiled program and readies it for the interpreter.
func fromRaw(expr string, raw []bpf.RawInstruction) (*Filter, error) {
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		return nil, fmt.Errorf("%w %q: the compiled program uses instructions the interpreter lacks", ErrFilter, expr)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		return nil, fmt.Errorf("%w %q: compiled program refused: %w", ErrFilter, expr, err)
	}
	return &Filter{expr: expr, prog: prog, vm: vm}, nil
}

// Match reports whether the filter takes frame, an Ethernet frame.
func (f *Filter) Match(frame []byte) bool {
	n, err := f.vm.Run(frame)
	return err == nil && n > 0
}

// String is the expression the filter was compiled from.
func (f *Filter) String() string { return f.expr }

// Program is the compiled program, as tcpdump -d would show it.
func (f *Filter) Program() []bpf.Instruction { return f.prog }
