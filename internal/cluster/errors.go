package cluster

import "errors"

// Errors returned by Store methods, for errors.Is. Each returned error
// wraps one of them with what was asked and what to do about it.
var (
	// ErrExists: a network of that name is already in the store.
	ErrExists = errors.New("cluster: already exists")
	// ErrNotFound: no network (or endpoint) of that name in the store.
	ErrNotFound = errors.New("cluster: not found")
	// ErrVNIInUse: another cluster network has that VNI.
	ErrVNIInUse = errors.New("cluster: VNI in use")
	// ErrOverlap: the subnet shares addresses with another cluster network's.
	ErrOverlap = errors.New("cluster: subnet overlaps")
	// ErrInUse: the address is held by another owner.
	ErrInUse = errors.New("cluster: address in use")
	// ErrFull: no free address (or VNI) left.
	ErrFull = errors.New("cluster: full")
	// ErrUnavailable: etcd did not answer in time. Local networks and the
	// traffic already flowing are unaffected.
	ErrUnavailable = errors.New("cluster: store unavailable")
	// ErrInvalid: a request or a Config the store cannot take.
	ErrInvalid = errors.New("cluster: invalid")
)
