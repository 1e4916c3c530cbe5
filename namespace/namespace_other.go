//go:build !linux

package namespace

import (
	"fmt"
	"runtime"
)

func resolve(path string) (string, error) {
	return "", fmt.Errorf("%s: network namespaces are not implemented on %s", path, runtime.GOOS)
}

// Do runs fn inside the network namespace at path; network namespaces
// exist on Linux only.
func Do(path string, fn func() error) error {
	return fmt.Errorf("enter network namespace %s: not implemented on %s", path, runtime.GOOS)
}
