package api

import "errors"

// Error classes. The daemon wraps its errors with one of these (using %w)
// so the server can pick the HTTP status; the message is the error's text.
var (
	ErrInvalid  = errors.New("invalid request")
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrForbidden is for a peer that may not use the socket (403).
	ErrForbidden = errors.New("permission denied")
)
