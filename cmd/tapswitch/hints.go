package main

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

// The daemon's errors say what failed; the CLI says what to do about it,
// in the terms of its commands and flags. advise adds that hint to an
// error of the client where one helps.

// hintError is an error with what the user can do about it.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + "; " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

// advise returns err, which cmd got from the daemon or in reaching it,
// with a hint when one helps.
func (g *globals) advise(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	if h := connHint(err, g.socket); h != "" {
		return &hintError{err: err, hint: h}
	}
	return err
}

// connHint says what to do when the daemon at socket could not be
// reached.
func connHint(err error, socket string) string {
	var de *api.DaemonError
	if errors.As(err, &de) {
		// The daemon was reached and answered.
		return ""
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return "is it running? Start it with 'tapswitchd &' as root, or point --socket or " + api.SocketEnv + " at its socket"
	case errors.Is(err, fs.ErrPermission):
		return permissionHint(socket)
	}
	return ""
}
