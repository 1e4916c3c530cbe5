package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// binDir holds tapswitchd, tapswitch and tapswitch-cni, built once by
// TestMain. It is empty when the tests cannot run (not root), so nothing
// is built then.
var binDir string

// commands are the binaries under test.
var commands = []string{
	"github.com/tapswitch/tapswitch/cmd/tapswitchd",
	"github.com/tapswitch/tapswitch/cmd/tapswitch",
	"github.com/tapswitch/tapswitch/cmd/tapswitch-cni",
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "tapswitch-e2e-bin")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		args := []string{"build", "-o", dir + "/"}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, commands...)
		// go test puts the go command of its own toolchain first in PATH.
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
			return 1
		}
		binDir = dir
		// A program built with -race sleeps a second before it exits, to
		// give reports from other goroutines time to print. Every CLI
		// call and every daemon stop would pay it; reports still print
		// as races happen, and the exit code still says so.
		if raceEnabled && os.Getenv("GORACE") == "" {
			os.Setenv("GORACE", "atexit_sleep_ms=0")
		}
		// The daemon makes /etc/netns for the resolv.conf of attached
		// namespaces; leave the host as it was found. Remove takes an
		// empty directory only, so nothing anyone else put there goes.
		if _, err := os.Stat(netnsEtcDir); os.IsNotExist(err) {
			defer os.Remove(netnsEtcDir)
		}
	}
	return m.Run()
}
