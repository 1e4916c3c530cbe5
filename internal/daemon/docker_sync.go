package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/docker"
	"github.com/tapswitch/tapswitch/internal/dockerapi"
)

// The Docker sync keeps the driver's networks and ports in step with
// dockerd, through dockerd's own API (internal/dockerapi), from a
// goroutine of its own: a plugin call never waits on it, since dockerd
// waits on the plugin while it makes what the call is about.
//
//   - Names: a Docker network is renamed after Docker's name, a joined
//     port after its container, once dockerd tells them (at connect, and
//     then from its event stream: network create and connect, container
//     rename). A container on several tapswitch networks has one port
//     named after it and the others CONTAINER-NETWORK. A name tapswitch
//     cannot take (one of another network or port, or not a DNS label)
//     leaves the provisional name, logged once.
//   - Re-sync: each time the event stream opens (tapswitchd's start, and
//     dockerd's after it restarted or could not be reached), the
//     endpoints and networks tapswitch had before are compared with
//     dockerd's: those dockerd no longer has are freed, as its
//     DeleteEndpoint or DeleteNetwork would have (it makes those calls
//     only while the plugin answers, and a dockerd killed makes none).
//     Only what existed before the stream opened is looked at: what
//     dockerd makes meanwhile may not be in its answers yet. A dockerd
//     that knows none of the driver's networks is taken for another
//     than the one using the plugin, and frees nothing.
//   - dockerd unreachable: the provisional names stay, the sync tries
//     again (every second at first, then every dockerSyncMaxWait), and
//     says so once in the log, never as an error of a call.

// dockerSyncFirstWait and dockerSyncMaxWait are the first and the
// longest wait between two attempts to reach dockerd; variables for the
// package's tests.
var (
	dockerSyncFirstWait = time.Second
	dockerSyncMaxWait   = 10 * time.Second
)

// dockerSyncTimeout bounds one round of questions to dockerd.
const dockerSyncTimeout = 30 * time.Second

// dockerSync is the running sync.
type dockerSync struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	// told are the names already logged as not taken, so that each is
	// logged once.
	told map[string]bool
}

// StartDockerSync starts syncing with the dockerd at host (a unix://
// URL, "" for dockerapi.DefaultHost). It fails only on a host it cannot
// use; a dockerd that does not answer is waited for.
func (d *Daemon) StartDockerSync(host string) error {
	c, err := dockerapi.New(host)
	if err != nil {
		return err
	}
	d.dsync.mu.Lock()
	defer d.dsync.mu.Unlock()
	if d.dsync.cancel != nil {
		return errors.New("the Docker sync already runs")
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.dsync.cancel, d.dsync.done, d.dsync.told = cancel, make(chan struct{}), map[string]bool{}
	go func() {
		defer close(d.dsync.done)
		defer c.Close()
		d.runDockerSync(ctx, c)
	}()
	return nil
}

// StopDockerSync stops the sync, if it runs, and waits for it.
func (d *Daemon) StopDockerSync() {
	d.dsync.mu.Lock()
	cancel, done := d.dsync.cancel, d.dsync.done
	d.dsync.cancel = nil
	d.dsync.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// dockerBefore is what the driver had when the event stream was last
// lost, or at the sync's start: what a re-sync may free.
type dockerBefore struct {
	nets, endpoints map[string]bool
}

func (d *Daemon) dockerBeforeNow() dockerBefore {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := dockerBefore{nets: map[string]bool{}, endpoints: map[string]bool{}}
	for id := range d.docker.nets {
		b.nets[id] = true
	}
	for id := range d.docker.endpoints {
		b.endpoints[id] = true
	}
	return b
}

func (d *Daemon) runDockerSync(ctx context.Context, c *dockerapi.Client) {
	log := d.log.With("docker_host", c.Host())
	before := d.dockerBeforeNow()
	wait := dockerSyncFirstWait
	warned, wasUp := false, false
	for {
		opened := false
		err := c.Events(ctx, func() {
			opened = true
			if wasUp || warned {
				log.Info("dockerd answers again; re-syncing Docker's networks and endpoints")
			}
			warned, wait = false, dockerSyncFirstWait
			d.dockerResync(ctx, c, before)
		}, func(ev dockerapi.Event) { d.dockerEvent(ctx, c, ev) })
		if ctx.Err() != nil {
			return
		}
		switch {
		case opened:
			log.Warn("dockerd went away; Docker's networks and endpoints are re-synced when it answers again", "err", err)
			wasUp = true
			before = d.dockerBeforeNow()
		case !warned:
			log.Warn("dockerd does not answer: Docker's networks and containers keep their provisional names (ids) until it does; set --docker-host if its socket is elsewhere", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, dockerSyncMaxWait)
	}
}

// dockerEvent renames what an event of dockerd tells the name of.
func (d *Daemon) dockerEvent(ctx context.Context, c *dockerapi.Client, ev dockerapi.Event) {
	var ids []string
	switch {
	case ev.Type == "network" && (ev.Action == "create" || ev.Action == "connect"):
		d.mu.Lock()
		_, ours := d.docker.nets[ev.Actor.ID]
		d.mu.Unlock()
		if !ours {
			return
		}
		ids = []string{ev.Actor.ID}
	case ev.Type == "container" && ev.Action == "rename":
		ids = d.dockerNetIDs()
	default:
		return
	}
	ctx, cancel := context.WithTimeout(ctx, dockerSyncTimeout)
	defer cancel()
	seen, _ := d.inspectDockerNets(ctx, c, ids)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applyDockerNamesLocked(seen)
}

func (d *Daemon) dockerNetIDs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for id := range d.docker.nets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// inspectDockerNets asks dockerd about the networks ids, and returns
// those it answered for; missing lists those it does not have.
func (d *Daemon) inspectDockerNets(ctx context.Context, c *dockerapi.Client, ids []string) (seen []dockerapi.Network, missing []string) {
	for _, id := range ids {
		n, err := c.Network(ctx, id)
		switch {
		case errors.Is(err, dockerapi.ErrNotFound):
			missing = append(missing, id)
		case err != nil:
			d.log.Debug("Docker network not inspected", "docker_network", docker.ShortID(id), "err", err)
		case n.ID == id:
			seen = append(seen, n)
		}
	}
	return seen, missing
}

// dockerResync renames what dockerd names and frees what dockerd no
// longer has of before.
func (d *Daemon) dockerResync(ctx context.Context, c *dockerapi.Client, before dockerBefore) {
	ctx, cancel := context.WithTimeout(ctx, dockerSyncTimeout)
	defer cancel()
	all, err := c.Networks(ctx, "")
	if err != nil {
		d.log.Warn("dockerd's networks not listed; nothing is freed or renamed until the next re-sync", "err", err)
		return
	}
	known := map[string]bool{}
	for _, n := range all {
		known[n.ID] = true
	}
	var ask []string
	for _, id := range d.dockerNetIDs() {
		if known[id] {
			ask = append(ask, id)
		}
	}
	seen, _ := d.inspectDockerNets(ctx, c, ask)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applyDockerNamesLocked(seen)
	have := d.dockerIDsLocked()
	if len(have.nets) > 0 && len(ask) == 0 {
		// Not one of the networks is this dockerd's: another dockerd
		// than the one that uses the plugin, most likely. Nothing is
		// freed on its word.
		d.tellNameOnce("dockerd "+c.Host(), "dockerd knows none of tapswitch's Docker networks: is --docker-host the dockerd that uses this plugin? Nothing is re-synced with it", "networks", len(have.nets))
		return
	}
	plan := staleDocker(before, have, known, seen)
	for _, id := range plan.endpoints {
		d.dropDockerEndpointLocked(d.docker.endpoints[id], "docker_forgot")
	}
	for _, id := range plan.nets {
		d.dropDockerNetworkLocked(id)
	}
	if len(plan.endpoints)+len(plan.nets) > 0 {
		d.saveLocked()
		d.log.Info("re-synced with dockerd: freed what it no longer has", "endpoints", len(plan.endpoints), "networks", len(plan.nets))
	}
}

// dockerIDs are the driver's networks and endpoints, as staleDocker
// sees them: each endpoint's network.
type dockerIDs struct {
	nets      []string
	endpoints map[string]string
}

func (d *Daemon) dockerIDsLocked() dockerIDs {
	ids := dockerIDs{endpoints: map[string]string{}}
	for id := range d.docker.nets {
		ids.nets = append(ids.nets, id)
	}
	for id, e := range d.docker.endpoints {
		ids.endpoints[id] = e.NetworkID
	}
	return ids
}

// stalePlan is what a re-sync frees.
type stalePlan struct {
	endpoints, nets []string
}

// staleDocker is what of have dockerd no longer has: endpoints of before
// on a network dockerd does not list (known), or missing from the
// network's inspection (seen); networks of before dockerd does not list.
// A network dockerd lists but was not inspected (an error) keeps its
// endpoints.
func staleDocker(before dockerBefore, have dockerIDs, known map[string]bool, seen []dockerapi.Network) stalePlan {
	inspected := map[string]map[string]bool{}
	for _, n := range seen {
		eps := map[string]bool{}
		for _, e := range n.Containers {
			eps[e.EndpointID] = true
		}
		inspected[n.ID] = eps
	}
	var plan stalePlan
	for id, nid := range have.endpoints {
		if !before.endpoints[id] {
			continue
		}
		if !known[nid] {
			plan.endpoints = append(plan.endpoints, id)
			continue
		}
		if eps, ok := inspected[nid]; ok && !eps[id] {
			plan.endpoints = append(plan.endpoints, id)
		}
	}
	for _, id := range have.nets {
		if before.nets[id] && !known[id] {
			plan.nets = append(plan.nets, id)
		}
	}
	slices.Sort(plan.endpoints)
	slices.Sort(plan.nets)
	return plan
}

// applyDockerNamesLocked renames the networks and ports of seen after
// Docker's names.
func (d *Daemon) applyDockerNamesLocked(seen []dockerapi.Network) {
	for _, dn := range seen {
		rec, ok := d.docker.nets[dn.ID]
		if !ok {
			continue
		}
		if n, ok := d.nets[rec.Network]; ok && n.name != dn.Name {
			if err := d.renameNetworkLocked(n, dn.Name); err != nil {
				d.tellNameOnce("network "+dn.Name, "Docker's network keeps its provisional name", "network", n.name, "docker_name", dn.Name, "err", err)
			}
		}
	}
	// Ports: the plain container name goes first to the port of the
	// network Docker lists first, in name order.
	slices.SortFunc(seen, func(a, b dockerapi.Network) int { return strings.Compare(a.Name, b.Name) })
	for _, dn := range seen {
		cids := make([]string, 0, len(dn.Containers))
		for cid := range dn.Containers {
			cids = append(cids, cid)
		}
		slices.Sort(cids)
		for _, cid := range cids {
			ce := dn.Containers[cid]
			ep, ok := d.docker.endpoints[ce.EndpointID]
			if !ok || ep.Port == nil || ce.Name == "" {
				continue
			}
			p, ok := d.ports[ep.Port.Name]
			if !ok {
				continue
			}
			d.nameDockerPortLocked(p, ce.Name)
		}
	}
}

// nameDockerPortLocked renames the Docker port p after its container:
// container, or container-network if another port has that name.
func (d *Daemon) nameDockerPortLocked(p *port, container string) {
	alt := container + "-" + p.net.name
	if p.name() == container || p.name() == alt {
		return
	}
	if apiserver.CheckName("port", container) != nil {
		d.tellNameOnce("port "+container, "the container's name is not a DNS name; its port keeps its provisional name", "port", p.name(), "container", container)
		return
	}
	for _, name := range []string{container, alt} {
		if !d.portNameFreeLocked(name, p) {
			continue
		}
		if err := d.renamePortLocked(p, name, container); err != nil {
			d.tellNameOnce("port "+name, "the container's port keeps its provisional name", "port", p.name(), "container", container, "err", err)
		}
		return
	}
	d.tellNameOnce("port "+container, "the container's name is taken by other ports; its port keeps its provisional name", "port", p.name(), "container", container)
}

// portNameFreeLocked reports whether no port but p has name, in any case.
func (d *Daemon) portNameFreeLocked(name string, p *port) bool {
	for o, q := range d.ports {
		if q != p && strings.EqualFold(o, name) {
			return false
		}
	}
	return true
}

// tellNameOnce logs, once per key, why a name was not taken.
func (d *Daemon) tellNameOnce(key, msg string, args ...any) {
	if d.dsync.told == nil {
		d.dsync.told = map[string]bool{}
	}
	if d.dsync.told[key] {
		return
	}
	d.dsync.told[key] = true
	d.log.Warn(msg, args...)
}

// dropDockerEndpointLocked frees an endpoint dockerd no longer has (or
// whose container's namespace vanished): its port, if joined, its
// addresses, and the endpoint. A later DeleteEndpoint of it finds
// nothing, and succeeds.
func (d *Daemon) dropDockerEndpointLocked(ep *dockerEndpoint, reason string) {
	if ep == nil {
		return
	}
	d.leaveLocked(ep, reason)
	d.freeEndpointLocked(ep)
	d.log.Info("Docker's endpoint freed", "endpoint", docker.ShortID(ep.ID), "network", ep.Network, "reason", reason)
}

// dropDockerNetworkLocked removes a network dockerd no longer has, once
// no port is on it.
func (d *Daemon) dropDockerNetworkLocked(id string) {
	dn, ok := d.docker.nets[id]
	if !ok {
		return
	}
	if n, ok := d.nets[dn.Network]; ok {
		if ports := d.portsOfLocked(n); len(ports) > 0 {
			d.log.Warn("dockerd no longer has the network, but ports are still on it; it stays", "network", n.name, "ports", len(ports))
			return
		}
		for _, e := range d.docker.endpoints {
			if e.NetworkID == id {
				return
			}
		}
		if err := d.stopNetworkLocked(n); err != nil {
			d.log.Warn("remove a network dockerd no longer has", "network", n.name, "err", err)
		}
		ev := api.Event{Type: api.EventNetworkRemove, Network: n.name, Reason: "docker_forgot"}
		d.events.Publish(ev)
	}
	d.forgetDockerNetworkLocked(id)
	d.log.Info("Docker's network freed: dockerd no longer has it", "docker_network", docker.ShortID(id), "network", dn.Network)
}

// forgetDockerNetworkLocked drops what the driver records of Docker's
// network id: the network and its IPAM pools.
func (d *Daemon) forgetDockerNetworkLocked(id string) {
	dn, ok := d.docker.nets[id]
	if !ok {
		return
	}
	delete(d.docker.pools, dn.Pool)
	delete(d.docker.pools, dn.Pool6)
	delete(d.docker.nets, id)
}

// dockerPortFailedLocked frees the endpoint of a Docker port whose TAP
// failed for good: its container's namespace vanished, taking the TAP
// with it. Its addresses go at once, not at Docker's DeleteEndpoint,
// which a dockerd that is down does not make.
func (d *Daemon) dockerPortFailedLocked(p *port) {
	if p.kind != api.KindDocker {
		return
	}
	for _, ep := range d.docker.endpoints {
		if ep.Port != nil && ep.Port.Name == p.name() {
			// The port is gone already: only the endpoint is left.
			ep.Port = nil
			d.dropDockerEndpointLocked(ep, "device_gone")
			return
		}
	}
}

// dockerRenamedLocked updates the driver's records after a rename of a
// network (kind "network") or port from old to name.
func (d *Daemon) dockerRenamedLocked(kind, old, name string) {
	switch kind {
	case "network":
		for _, dn := range d.docker.nets {
			if dn.Network == old {
				dn.Network = name
			}
		}
		for _, ep := range d.docker.endpoints {
			if ep.Network == old {
				ep.Network = name
			}
			if ep.Port != nil && ep.Port.Network == old {
				ep.Port.Network = name
				ep.Port.Request.Network = name
			}
		}
		for _, p := range d.docker.pools {
			if p.Network == old {
				p.Network = name
			}
		}
	case "port":
		for _, ep := range d.docker.endpoints {
			if ep.Port != nil && ep.Port.Name == old {
				ep.Port.Name = name
			}
		}
	default:
		panic(fmt.Sprintf("dockerRenamedLocked: kind %q", kind))
	}
}
