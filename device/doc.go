// Package device declares the contract between the switch and every kind
// of port: a TAP inside a namespace, a network's gateway TAP, a TAP handed
// to a container engine, a tunnel to another host, an in-memory port in a
// test. The switch knows ports only through it.
//
// A frame crosses the contract with a virtio net header in front of it
// (VnetHdr, the header Linux puts before every frame of a TAP opened with
// IFF_VNET_HDR). The header says whether the frame is a super-frame to be
// cut into segments (GSO) and whether a checksum is left to fill in. A
// device declares in Caps which of those it takes on Write; the switch
// segments and completes checksums in software for a device that does not
// take them, at that device only.
//
// Reads and writes move batches, as wireguard-go's tun.Device does: the
// caller owns the buffers and keeps Headroom bytes free in front of each
// frame for the device's own headers.
package device
