package nat

import (
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// system is the Linux side of a Manager: a netlink connection to
// nf_tables in one network namespace.
type system struct {
	// conn opens a netlink socket per call, in the namespace of nsfd.
	conn *nftables.Conn
	// nsfd is the Manager's own duplicate of the WithNetNS descriptor, or
	// -1 to work in the caller's namespace.
	nsfd int

	isolate     string
	table       *nftables.Table
	postrouting *nftables.Chain
	forward     *nftables.Chain
	input       *nftables.Chain
}

func newSystem(cfg config) (*system, error) {
	s := &system{nsfd: -1, isolate: cfg.isolate, table: &nftables.Table{Name: cfg.table, Family: nftables.TableFamilyINet}}
	var opts []nftables.ConnOption
	if cfg.netns >= 0 {
		// The duplicate is never below 3: nftables reads a NetNS of 0 as
		// "the caller's namespace", so a namespace on descriptor 0 would
		// be silently ignored.
		fd, err := unix.FcntlInt(uintptr(cfg.netns), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("nat: duplicate network namespace descriptor %d: %w", cfg.netns, err)
		}
		s.nsfd = fd
		opts = append(opts, nftables.WithNetNSFd(fd))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		s.closeNS()
		return nil, fmt.Errorf("nat: open nftables: %w", err)
	}
	s.conn = conn
	s.postrouting = &nftables.Chain{
		Name:     chainPostrouting,
		Table:    s.table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	}
	accept := nftables.ChainPolicyAccept
	s.forward = &nftables.Chain{
		Name:     chainForward,
		Table:    s.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &accept,
	}
	s.input = &nftables.Chain{
		Name:     chainInput,
		Table:    s.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &accept,
	}

	// Adding the table first makes the delete succeed whether or not a
	// crashed daemon left one behind; the kernel applies the batch as
	// one transaction, so the old rules stay until the new table is in.
	s.conn.AddTable(s.table)
	s.conn.DelTable(s.table)
	s.conn.AddTable(s.table)
	s.conn.AddChain(s.postrouting)
	s.conn.AddChain(s.forward)
	s.conn.AddChain(s.input)
	if err := s.conn.Flush(); err != nil {
		s.closeNS()
		return nil, fmt.Errorf("nat: create table inet %s (nat chains in an inet table need Linux 5.2 or later): %w", s.table.Name, err)
	}
	return s, nil
}

func (s *system) addNetwork(n Network) error {
	if !n.Internal {
		for _, p := range n.subnets() {
			if err := s.enableForwarding(p); err != nil {
				return err
			}
		}
	}
	old, err := s.rulesOf(n.Name)
	if err != nil {
		return err
	}
	for _, r := range old {
		if err := s.conn.DelRule(r); err != nil {
			return fmt.Errorf("delete old rule %d: %w", r.Handle, err)
		}
	}
	udata := comment(n.Name)
	for _, spec := range rulesFor(n, s.isolate) {
		r := &nftables.Rule{Table: s.table, Chain: s.chain(spec.chain), Exprs: spec.exprs, UserData: udata}
		if spec.head {
			s.conn.InsertRule(r)
		} else {
			s.conn.AddRule(r)
		}
	}
	if err := s.conn.Flush(); err != nil {
		return fmt.Errorf("apply rules to table inet %s: %w", s.table.Name, err)
	}
	return nil
}

func (s *system) removeNetwork(name string) error {
	old, err := s.rulesOf(name)
	if err != nil {
		return err
	}
	if len(old) == 0 {
		return ErrUnknownNetwork
	}
	for _, r := range old {
		if err := s.conn.DelRule(r); err != nil {
			return fmt.Errorf("delete rule %d: %w", r.Handle, err)
		}
	}
	if err := s.conn.Flush(); err != nil {
		return fmt.Errorf("delete rules from table inet %s: %w", s.table.Name, err)
	}
	return nil
}

func (s *system) networks() ([]string, error) {
	rules, err := s.rules()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range rules {
		if name, ok := networkOf(r.UserData); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (s *system) dropped() (map[string]uint64, error) {
	rules, err := s.rules()
	if err != nil {
		return nil, err
	}
	drops := make(map[string]uint64)
	for _, r := range rules {
		name, ok := networkOf(r.UserData)
		if !ok {
			continue
		}
		drops[name] += dropCount(r.Exprs)
	}
	return drops, nil
}

func (s *system) close() error {
	// Added before it is deleted, so that a table someone else already
	// removed is no error at shutdown.
	s.conn.AddTable(s.table)
	s.conn.DelTable(s.table)
	err := s.conn.Flush()
	if err != nil {
		err = fmt.Errorf("delete table inet %s: %w", s.table.Name, err)
	}
	return errors.Join(err, s.closeNS())
}

func (s *system) closeNS() error {
	if s.nsfd < 0 {
		return nil
	}
	fd := s.nsfd
	s.nsfd = -1
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close network namespace descriptor: %w", err)
	}
	return nil
}

func (s *system) chain(name string) *nftables.Chain {
	switch name {
	case chainPostrouting:
		return s.postrouting
	case chainInput:
		return s.input
	}
	return s.forward
}

// rules returns the rules of every chain as the kernel holds them.
func (s *system) rules() ([]*nftables.Rule, error) {
	var all []*nftables.Rule
	for _, c := range []*nftables.Chain{s.postrouting, s.forward, s.input} {
		rules, err := s.conn.GetRules(s.table, c)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s in table inet %s: %w", c.Name, s.table.Name, err)
		}
		all = append(all, rules...)
	}
	return all, nil
}

// rulesOf returns the rules tagged with network name.
func (s *system) rulesOf(name string) ([]*nftables.Rule, error) {
	rules, err := s.rules()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(rules, func(r *nftables.Rule) bool {
		got, ok := networkOf(r.UserData)
		return !ok || got != name
	}), nil
}
