// Package tap creates TAP devices inside network namespaces and moves
// Ethernet frames through them.
//
// Every device is opened with IFF_VNET_HDR and TUNSETOFFLOAD, so each
// read returns, and each write takes, a virtio net header (VnetHdrLen
// bytes) in front of the frame. With checksum and segmentation offloads
// on, the kernel hands over TCP (and UDP, where it supports USO) frames of
// up to 64 KiB with their checksums still to be filled in; written
// unchanged to another TAP, the kernel there takes them as one GRO packet.
// That keeps a userspace switch at kernel-bridge speed, since it moves one
// super-frame where it would otherwise move forty.
//
// A device made without Config.Persist goes when its last file descriptor
// closes. A persistent one (TUNSETPERSIST) stays in its namespace, with
// its MAC, MTU, addresses and routes, when the process holding it exits
// or dies: the namespace keeps its interface, frames sent meanwhile are
// dropped as on a cable pulled out, and Open takes the device again,
// which is how a restarted daemon resumes its ports without the
// connections through them noticing more than a short loss. Close removes
// a device either way; Release closes its descriptors and leaves a
// persistent device in place for Open.
package tap
