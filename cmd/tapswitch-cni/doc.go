// Command tapswitch-cni is the CNI plugin of tapswitch: a container
// runtime (podman's CNI backend, containerd, CRI-O, cnitool) runs it to
// put a container's network namespace on a tapswitch network. It is a
// thin client of tapswitchd's API (package api); everything it knows
// about an attachment after a daemon restart comes from the daemon,
// which keeps each port's CNI_CONTAINERID in its state file.
//
// Network configuration (one plugin of a conflist, or a .conf):
//
//	{"cniVersion": "1.1.0", "name": "front", "type": "tapswitch-cni",
//	 "network": "front",                           // optional: the tapswitch network; default the config's name
//	 "socket": "/run/tapswitch/tapswitch.sock",    // optional: default $TAPSWITCH_SOCKET, then api.DefaultSocket
//	 "ipam": {"type": "host-local", ...}}          // optional: delegated IPAM; default tapswitch's own
//
// The commands (CNI spec 1.1; cniVersion 0.4.0, 1.0.0 and 1.1.0):
//
//   - ADD attaches CNI_NETNS to the network with a TAP called CNI_IFNAME,
//     recorded under CNI_CONTAINERID. The port is named after the pod
//     (K8S_POD_NAME in CNI_ARGS), then POD-IFNAME, then
//     cni-<12 of the container id>-IFNAME, whichever is free; the pod's
//     name is also the port's DNS name. Addresses come from tapswitch, or
//     from the IPAM plugin when the config has an "ipam" section. The
//     result lists the network's gateway interface (host side) and the
//     TAP (sandbox), the addresses with the gateway, a default route via
//     the gateway and the network's DNS server and domain. An ADD repeated
//     for the same container id and interface returns the attachment that
//     exists. After another plugin (prevResult given), its interfaces,
//     addresses and routes are appended to prevResult's; the plugin is
//     meant to come first in a conflist, with portmap, tuning, bandwidth
//     or firewall after it.
//   - IPAM plugin's addresses outside the network's subnet are only put on
//     the TAP (a plain wire): no gateway, route or DNS in the result, and
//     the network's DNS does not answer for them. Give the IPAM plugin a
//     range inside the subnet (tapswitch network inspect NET). An IPAM
//     plugin that does not speak the config's cniVersion is called with
//     the highest version it speaks (Debian 12's host-local stops at
//     1.0.0); it gets STATUS and GC only if it speaks 1.1.0.
//   - DEL detaches the port of the container id and interface name; one
//     already gone is success. The IPAM plugin is always called.
//   - CHECK needs prevResult: the port must exist with the addresses
//     prevResult lists, and the interface must be in the namespace with
//     them (and its MAC).
//   - STATUS succeeds when the daemon answers and has the network.
//   - GC detaches every port of the network that has a container id not
//     in cni.dev/valid-attachments. Ports attached by hand (no container
//     id) are never touched; without the key at all nothing is.
//
// Errors are CNI errors: 7 for a bad config or a network that does not
// exist, 11 (try again later) while tapswitchd does not answer, 51 from
// STATUS while it does not answer (the switch is the daemon: containers
// already attached have no connectivity either), 50 from STATUS when the
// network does not exist, 999 for the rest, with the daemon's message.
package main
