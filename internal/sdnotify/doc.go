// Package sdnotify speaks the service manager's side-channel protocols,
// as sd_notify(3) and sd_listen_fds(3) describe them: a service tells
// the manager that it is ready (READY=1), hands it file descriptors to
// keep across its own restarts and crashes (FDSTORE=1 with FDNAME=, the
// descriptors attached with SCM_RIGHTS, and FDSTOREREMOVE=1 to drop
// them), and at start takes back what the manager kept (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES).
//
// Nothing here needs the manager to be systemd: the protocol is a
// datagram on a Unix socket and three environment variables, and
// sdnotifytest implements the manager's side for tests.
package sdnotify
