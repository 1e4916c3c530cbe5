package main

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/namespace"
)

// inspectLink reads the MAC and addresses of ifname in the namespace at
// netnsPath.
func inspectLink(netnsPath, ifname string) (linkState, error) {
	var st linkState
	err := namespace.Do(netnsPath, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("interface %s in %s: %w", ifname, netnsPath, err)
		}
		st.MAC = link.Attrs().HardwareAddr.String()
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("addresses of %s in %s: %w", ifname, netnsPath, err)
		}
		for _, a := range addrs {
			if p, ok := prefixOf(*a.IPNet); ok {
				st.Addrs = append(st.Addrs, p)
			}
		}
		return nil
	})
	return st, err
}
