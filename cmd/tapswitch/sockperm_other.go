//go:build !unix

package main

import "errors"

// socketGroup reports no group where files have none.
func socketGroup(path string) (group string, open bool, err error) {
	return "", false, errors.New("no Unix file groups")
}
