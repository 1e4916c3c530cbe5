// Package fdset holds open file descriptors by name, as one process hands
// them to another: a daemon to its successor (tapswitchd --upgrade), or a
// service manager to the daemon it starts (LISTEN_FDS, LISTEN_FDNAMES).
//
// A name may hold several descriptors (the queues of one TAP). Whoever
// takes a name owns its descriptors; Close closes those nobody took.
package fdset

import (
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Set is named groups of open descriptors. Its methods are safe for
// concurrent use; a nil *Set is empty.
type Set struct {
	mu    sync.Mutex
	fds   map[string][]int
	order []string
}

// Add puts fds under name, after any already there; the Set owns them.
func (s *Set) Add(name string, fds ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fds == nil {
		s.fds = make(map[string][]int)
	}
	if _, ok := s.fds[name]; !ok {
		s.order = append(s.order, name)
	}
	s.fds[name] = append(s.fds[name], fds...)
}

// Take removes name's descriptors from the set and returns them; the
// caller owns them. It returns nil when name has none.
func (s *Set) Take(name string) []int {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fds, ok := s.fds[name]
	if !ok {
		return nil
	}
	delete(s.fds, name)
	s.order = slices.DeleteFunc(s.order, func(n string) bool { return n == name })
	return fds
}

// TakeOne is Take for a name that holds a single descriptor (a
// listener): it returns it, or -1 when name has none. Extra descriptors
// under the name are closed.
func (s *Set) TakeOne(name string) int {
	fds := s.Take(name)
	if len(fds) == 0 {
		return -1
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	return fds[0]
}

// Names lists the names still in the set, in the order they were added.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// Len counts the descriptors still in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, fds := range s.fds {
		n += len(fds)
	}
	return n
}

// Each calls fn with every name and its descriptors, in order, without
// taking them.
func (s *Set) Each(fn func(name string, fds []int)) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.order {
		fn(n, s.fds[n])
	}
}

// Close closes every descriptor still in the set and empties it; it
// returns the names that held them.
func (s *Set) Close() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.order
	for _, n := range names {
		for _, fd := range s.fds[n] {
			unix.Close(fd)
		}
	}
	s.fds, s.order = nil, nil
	return names
}
