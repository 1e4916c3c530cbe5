package sdnotify

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/fdset"
)

// maxListenFDs bounds LISTEN_FDS, so that a corrupt environment does not
// make the daemon claim, and close, every descriptor number there is.
// It is far above any FileDescriptorStoreMax= the unit file sets.
const maxListenFDs = 1 << 16

// Listen takes the descriptors the manager passed (sd_listen_fds(3)):
// LISTEN_FDS of them from descriptor 3 up, named by LISTEN_FDNAMES, when
// LISTEN_PID is this process. It unsets the variables, so that child
// processes do not take them for theirs, and makes the descriptors
// close-on-exec. Without them it returns an empty set. A descriptor the
// manager did not name is named "unknown", as the manager would.
func Listen() (*fdset.Set, error) {
	defer func() {
		os.Unsetenv(EnvListenPID)
		os.Unsetenv(EnvListenFDs)
		os.Unsetenv(EnvListenNames)
	}()
	return listen(os.Getenv(EnvListenPID), os.Getenv(EnvListenFDs), os.Getenv(EnvListenNames), os.Getpid())
}

func listen(pidVar, fdsVar, namesVar string, self int) (*fdset.Set, error) {
	set := &fdset.Set{}
	if pidVar == "" || fdsVar == "" {
		return set, nil
	}
	pid, err := strconv.Atoi(pidVar)
	if err != nil {
		return set, fmt.Errorf("%s=%q: not a process id", EnvListenPID, pidVar)
	}
	if pid != self {
		// Meant for another process (a parent that did not unset them).
		return set, nil
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 || n > maxListenFDs {
		return set, fmt.Errorf("%s=%q: want a count of descriptors, 0 to %d", EnvListenFDs, fdsVar, maxListenFDs)
	}
	var names []string
	if namesVar != "" {
		names = strings.Split(namesVar, ":")
	}
	for i := range n {
		fd := ListenFDsStart + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			// Not open: nothing to take.
			continue
		}
		name := "unknown"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		set.Add(name, fd)
	}
	return set, nil
}
