package namespace

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestResolve(t *testing.T) {
	self := fmt.Sprintf("pid:%d", os.Getpid())
	tests := []struct {
		spec    string
		want    string // a path, or "" when an error is expected
		errText string
	}{
		{spec: self, want: fmt.Sprintf("/proc/%d/ns/net", os.Getpid())},
		{spec: "/proc/self/ns/net", want: "/proc/self/ns/net"},
		{spec: "", errText: "empty network namespace"},
		{spec: "pid:abc", errText: "pid must be a positive number"},
		{spec: "pid:-1", errText: "pid must be a positive number"},
		{spec: "no-such-netns-for-tests", errText: "not found"},
		{spec: "..", errText: "not a valid name"},
		{spec: "/proc/self/ns/uts", errText: "not a network namespace"},
		{spec: "/etc/hostname", errText: "not a namespace file"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := Resolve(tt.spec)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Resolve(%q) = %q, %v; want an error containing %q", tt.spec, got, err, tt.errText)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.spec, got, err, tt.want)
			}
		})
	}
	if _, err := Resolve("no-such-netns-for-tests"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve(missing) = %v, want ErrNotFound", err)
	}
}

func TestDoReturnsToOwnNamespace(t *testing.T) {
	privtest.Require(t, "create a network namespace", "ip")
	before, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("tsns%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	path, err := Resolve(name)
	if err != nil {
		t.Fatalf("Resolve(%q) = %v", name, err)
	}
	var inside string
	err = Do(path, func() error {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	})
	if err != nil {
		t.Fatalf("Do() = %v", err)
	}
	if inside == "" || inside == before {
		t.Fatalf("inside Do the thread was in %q, want netns %s (not %s)", inside, name, before)
	}
	want := errors.New("from fn")
	if err := Do(path, func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Do() = %v, want fn's error", err)
	}
	after, _ := os.Readlink("/proc/thread-self/ns/net")
	if after != before {
		t.Fatalf("namespace after Do = %s, want %s", after, before)
	}
}
