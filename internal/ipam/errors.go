package ipam

import "errors"

var (
	// ErrInvalidSubnet is returned for a prefix that cannot be a network's
	// subnet: not a network address, or too small for a gateway and a host.
	ErrInvalidSubnet = errors.New("ipam: invalid subnet")

	// ErrUnsafeRange is returned for a subnet or address in a range no
	// network may live in (loopback, link-local, multicast, reserved; see
	// CheckSubnetRange).
	ErrUnsafeRange = errors.New("ipam: unsafe range")

	// ErrInvalidGateway is returned for a gateway outside its subnet or on
	// its network or broadcast address.
	ErrInvalidGateway = errors.New("ipam: invalid gateway")

	// ErrOutOfRange is returned by Reserve for an address outside the subnet.
	ErrOutOfRange = errors.New("ipam: address outside subnet")

	// ErrReserved is returned by Reserve for the network, broadcast or
	// gateway address.
	ErrReserved = errors.New("ipam: reserved address")

	// ErrInUse is returned by Reserve for an address already handed out.
	ErrInUse = errors.New("ipam: address in use")

	// ErrFull is returned by Allocate when every host address is taken.
	ErrFull = errors.New("ipam: subnet full")

	// ErrOverlap is returned by CheckOverlap for a subnet that shares
	// addresses with another network or a host route.
	ErrOverlap = errors.New("ipam: subnets overlap")

	// ErrInvalidPool is returned by NewPool for bases or a block size that
	// cannot yield usable subnets.
	ErrInvalidPool = errors.New("ipam: invalid address pool")

	// ErrPoolExhausted is returned by Pool.Next when every block overlaps
	// a subnet or route in use.
	ErrPoolExhausted = errors.New("ipam: address pool exhausted")

	// ErrInvalidState is returned by RestoreSubnet for saved state that does
	// not describe a valid subnet.
	ErrInvalidState = errors.New("ipam: invalid saved state")
)
