// Package daemon is tapswitchd's control plane: it turns API requests into
// TAP devices (package tap) and ports of the switch (package vswitch),
// validates what users ask for, and records the daemon's state.
package daemon
