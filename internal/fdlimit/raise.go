package fdlimit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// nrOpenPath holds fs.nr_open, the kernel's ceiling on RLIMIT_NOFILE.
const nrOpenPath = "/proc/sys/fs/nr_open"

// DefaultLimit is the descriptor limit tapswitchd sets for itself: the
// default fs.nr_open. A descriptor costs the kernel a pointer until it is
// used, so a large limit costs nothing at rest, and the budget it leaves
// (917,504) outlasts any one client, whom the per-port and per-source
// caps bound far sooner.
const DefaultLimit = 1 << 20

// NROpen reads fs.nr_open.
func NROpen() (int, error) {
	b, err := os.ReadFile(nrOpenPath)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", nrOpenPath, err)
	}
	return n, nil
}

// SetLimit sets the process's RLIMIT_NOFILE, soft and hard, to want, or
// to fs.nr_open when that is lower, and returns the limit now in force.
// Raising the hard limit takes CAP_SYS_RESOURCE; without it the soft
// limit is raised to the hard one and the error says why no further.
// Call it before the first Process: the budget is read from the limit
// once.
func SetLimit(want int) (int, error) {
	if ceil, err := NROpen(); err == nil && ceil > 0 {
		want = min(want, ceil)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return Limit(), fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur == uint64(want) && rl.Max == uint64(want) {
		return want, nil
	}
	// syscall.Setrlimit rather than the raw call, so that the Go runtime
	// knows the limit was set on purpose.
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(want), Max: uint64(want)})
	if err != nil && rl.Cur < rl.Max {
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: rl.Max, Max: rl.Max})
	}
	if err != nil {
		return Limit(), fmt.Errorf("set RLIMIT_NOFILE to %d (hard limit %d): %w", want, rl.Max, err)
	}
	return want, nil
}
