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
// Devices are not persistent: when the last file descriptor closes, the
// kernel removes the interface from its namespace, so a crashed daemon
// leaves nothing behind.
package tap
