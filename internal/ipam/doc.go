// Package ipam hands out IP addresses for tapswitch networks, the way
// Docker's default IPAM does for its bridge networks.
//
// Each network has one Subnet, or two of different families (a
// dual-stack network): its prefix, its gateway and the set of addresses
// given to attached ports. A network created without --subnet gets its
// prefix from a Pool, which picks the first block that overlaps neither
// another network nor a route the host already has: DefaultPool's /24s of
// 10.89.0.0/16, and for an IPv6 subnet DefaultPool6's /64s of the unique
// local fd89:7473:7700::/48.
//
// # Addresses
//
// The network address is never handed out (in IPv6 it is the
// subnet-router anycast address), nor is the IPv4 broadcast address, nor
// the gateway. The gateway defaults to the first host address. /31 (RFC
// 3021) and /127 (RFC 6164) subnets are point-to-point links without
// network or broadcast addresses: both addresses are hosts, one the
// gateway and one the port. /32 and /128 leave no room and are refused.
//
// # Allocation order
//
// Allocate hands out the lowest free address at or after a cursor that
// moves past each address it hands out and wraps at the end of the
// subnet. A released address is therefore reused only after every higher
// address has had its turn. A port that gets the address a detached port
// just gave up would be unreachable for a while: its peers still map that
// address to the old MAC in their ARP or neighbour caches. Sequential
// allocation costs O(1) amortised.
//
// Allocated addresses are kept in a set, so memory follows the number of
// attached ports, not the size of the subnet: an IPv6 /64 costs no more
// than an IPv4 /30.
//
// # Persistence
//
// The daemon saves each Subnet's State in its state file and rebuilds it
// with RestoreSubnet after a restart, so no address is handed out twice.
// RestoreSubnet checks everything it reads and reports a damaged entry as
// ErrInvalidState.
//
// # Concurrency
//
// Subnet methods are safe for concurrent use. A Pool never changes after
// it is built; choosing a subnet and recording the new network must
// happen under the caller's own lock, or two networks may pick the same
// block.
package ipam
