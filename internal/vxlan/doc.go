// Package vxlan is the data path of networks that span hosts: VXLAN
// (RFC 7348) over UDP, wire-compatible with Linux's vxlan device.
//
// An Endpoint is one UDP socket per daemon, bound to the advertised
// address only, shared by every network; a Tunnel is one network's port
// on it (one VNI), a device.Device the switch adds like any other port.
package vxlan
