// Package dockerapi is the little of the Docker Engine API tapswitchd
// needs, over dockerd's Unix socket: the names of the networks and
// containers it serves as a network driver, the containers that still
// exist, and the event stream that tells of new ones and of dockerd's
// own restarts.
//
// The remote driver protocol Docker speaks to a network plugin carries
// ids only. dockerd answers its API while it waits on the plugin, but a
// plugin call must never wait on dockerd: it would wait on itself. So
// the daemon asks this API afterwards, from its own goroutine, and a
// dockerd that cannot be reached leaves the provisional names as they
// are.
//
// Only what is used is decoded; every other field of dockerd's answers
// is ignored, so the client works with any API version from 1.24 on.
package dockerapi
