// Package docker serves the Docker Engine's network plugin protocols on
// tapswitchd's plugin socket: the remote network driver (libnetwork's
// docs/remote.md) and the remote IPAM driver (docs/ipam.md). Requests are
// JSON POSTs whose path names the call (/NetworkDriver.CreateNetwork);
// answers are JSON, with an Err member when the call failed.
//
// The package decodes and checks the requests and encodes the answers;
// what a call does is a Backend's, which the daemon implements. Docker
// replays calls after its own restarts, so a Backend makes every call
// idempotent: a call repeated succeeds without doing its work twice.
package docker
