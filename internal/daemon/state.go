package daemon

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/ipam"
)

// stateVersion is the state file's format. Version 1 had ports only; it
// is read as having no networks. Up to version 2 a port in the file had
// died with the daemon that wrote it; from version 3 its TAP outlives the
// daemon, and the next start takes it back.
const stateVersion = 3

// portState is what the state file records of a container port: the
// request that made it and what the daemon chose for it, enough to take
// its TAP back at the next start. A port is in the file while it is
// attached, and stays there when the daemon stops or dies.
type portState struct {
	// Kind is the port's kind (see plug.go); empty in files written
	// before kinds were recorded, which held container ports only.
	Kind    string            `json:"kind,omitempty"`
	Request api.AttachRequest `json:"request"`
	Name    string            `json:"name"`
	Network string            `json:"network"`
	MAC     string            `json:"mac"`
	// DNSName is set for a port made by connect: the name of the port
	// whose namespace it joined.
	DNSName string `json:"dns_name,omitempty"`
	// Owned are the addresses the network's IPAM holds for the port,
	// released when it goes.
	Owned []string `json:"owned,omitempty"`
	// ResolvConf is the resolv.conf the daemon wrote for the port's
	// namespace, removed when the namespace's last port goes.
	ResolvConf string `json:"resolv_conf,omitempty"`
	// Ifname, IPs and MTU are the TAP's name in the namespace, the
	// addresses put on it and the MTU asked for (0: the default).
	Ifname string   `json:"ifname,omitempty"`
	IPs    []string `json:"ips,omitempty"`
	MTU    int      `json:"mtu,omitempty"`
	// Pin is the bind mount of the namespace under the state directory,
	// for a namespace attached by pid or path (see pin).
	Pin string `json:"pin,omitempty"`
}

// networkState is what the state file records of a network, enough to
// bring it back, with its addresses, at the next start.
type networkState struct {
	Name     string           `json:"name"`
	Internal bool             `json:"internal,omitempty"`
	Subnet   ipam.SubnetState `json:"subnet"`
	// Bridge is the gateway interface of a network renamed since it
	// was made; empty while the network's name gives it (GatewayName).
	Bridge string `json:"bridge,omitempty"`
	// Subnet6 is the IPv6 subnet of a dual-stack network, whose Subnet
	// is its IPv4 one; absent for a network of one subnet, and in files
	// written before networks could have two.
	Subnet6 *ipam.SubnetState `json:"subnet6,omitempty"`
	// Scope is api.ScopeCluster for a network spanning hosts, with its
	// VNI; empty for a local one.
	Scope string `json:"scope,omitempty"`
	VNI   uint32 `json:"vni,omitempty"`
	// Stored: the cluster network is the cluster store's; one made with
	// static peers only is not, and a store never removes it.
	Stored bool `json:"stored,omitempty"`
}

// stateFile is the daemon's record of its networks and ports, rewritten
// whole on every change: written to a temporary file, synced, renamed
// over the old one, and the directory synced, so a reader (or a daemon
// started after a crash, even of the machine) sees the old or the new
// state, never a torn one. A temporary file left by a daemon killed in
// the middle of a write is never read, and is removed at the next start.
type stateFile struct {
	path string
}

// tempPattern names the temporary files of writeAtomic.
const tempPattern = ".state-*.json"

type stateDoc struct {
	Version  int            `json:"version"`
	Networks []networkState `json:"networks"`
	Ports    []portState    `json:"ports"`
	// Docker is what the Docker network driver keeps: Docker's ids of
	// networks and endpoints, its ports, and its IPAM pools.
	Docker *dockerDoc `json:"docker,omitempty"`
}

func openState(dir string) (*stateFile, error) {
	if dir == "" {
		return &stateFile{}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	// Only one daemon runs per state directory, so every temporary file
	// here is a dead daemon's unfinished write.
	if left, err := filepath.Glob(filepath.Join(dir, tempPattern)); err == nil {
		for _, f := range left {
			os.Remove(f)
		}
	}
	return &stateFile{path: filepath.Join(dir, "state.json")}, nil
}

// load reads the state file; a missing file is an empty state.
func (f *stateFile) load() (stateDoc, error) {
	var doc stateDoc
	if f.path == "" {
		return doc, nil
	}
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return doc, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return doc, fmt.Errorf("state file %s: %w; repair it, or move it away to start with the default network only", f.path, err)
	}
	if doc.Version < 1 || doc.Version > stateVersion {
		return doc, fmt.Errorf("state file %s: version %d, this tapswitchd reads 1 to %d; use the tapswitchd that wrote it, or move the file away", f.path, doc.Version, stateVersion)
	}
	return doc, nil
}

// saveLocked writes the state file, and logs and returns a failure;
// d.mu must be held.
func (d *Daemon) saveLocked() error {
	if d.state.path == "" {
		return nil
	}
	if err := writeAtomic(d.state.path, d.stateLocked()); err != nil {
		d.log.Error("write state", "path", d.state.path, "err", err)
		return err
	}
	return nil
}

// stateLocked is the daemon's state as the file records it, sorted so
// that the file changes only when the state does.
func (d *Daemon) stateLocked() stateDoc {
	doc := stateDoc{
		Version:  stateVersion,
		Networks: make([]networkState, 0, len(d.nets)),
		Ports:    []portState{},
	}
	for _, n := range d.nets {
		ns := networkState{Name: n.name, Internal: n.internal, Subnet: n.subnet.State(), Bridge: d.bridgeToRecord(n)}
		if n.scope == api.ScopeCluster {
			ns.Scope, ns.VNI, ns.Stored = n.scope, n.vni, n.stored
		}
		if len(n.subnets) > 1 {
			st := n.subnets[1].State()
			ns.Subnet6 = &st
		}
		doc.Networks = append(doc.Networks, ns)
	}
	for _, p := range d.ports {
		if p.kind == api.KindContainer {
			doc.Ports = append(doc.Ports, p.state)
		}
	}
	doc.Docker = d.dockerDocLocked()
	slices.SortFunc(doc.Networks, func(a, b networkState) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(doc.Ports, func(a, b portState) int { return cmp.Compare(a.Name, b.Name) })
	return doc
}

func writeAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	return df.Sync()
}

// intentRecord is what an attach may leave if the daemon dies before the
// state file records the port: written to the state directory's
// intents/ before anything is made (and synced when the attach may write
// a resolv.conf, see intendLocked), and removed once the state file
// records the port or the attach has rolled back. The next
// start reads every record left and removes what it names that no port
// of the state file holds (see sweep.go).
type intentRecord struct {
	Port    string `json:"port"`
	Network string `json:"network"`
	// NetnsPath is the namespace file the TAP is made through: the
	// port's pin (made after the record), or /run/netns/NAME.
	NetnsPath string `json:"netns_path"`
	Ifname    string `json:"ifname"`
	// ResolvConf is the resolv.conf the attach may write, or "".
	ResolvConf string `json:"resolv_conf,omitempty"`
}

// intentDir holds the intent records; its absence tells the sweep that
// no daemon of this state directory has written any (the first start of
// a daemon that writes them).
func (d *Daemon) intentDir() string { return filepath.Join(d.cfg.StateDir, "intents") }

// intentPath is the record of port's attach. Port names are DNS labels
// (apiserver.CheckName), never a path.
func (d *Daemon) intentPath(port string) string {
	return filepath.Join(d.intentDir(), port+".json")
}

// writeIntent writes rec; with durable, it syncs the file and the
// directory first, so that the record is on disk before what it names
// is made. A record torn by a crash in the middle of this write is
// harmless: nothing it would name was made yet.
func (d *Daemon) writeIntent(rec intentRecord, durable bool) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	dir := d.intentDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(d.intentPath(rec.Port), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	return df.Sync()
}

// readIntents returns the intent records left in the state directory,
// and whether the directory of them exists. Records that cannot be read
// (torn by a crash as they were written) are returned with their port
// only, from the file's name.
func (d *Daemon) readIntents() (recs []intentRecord, dirExists bool) {
	entries, err := os.ReadDir(d.intentDir())
	if err != nil {
		return nil, !errors.Is(err, fs.ErrNotExist)
	}
	for _, e := range entries {
		port, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		rec := intentRecord{Port: port}
		if data, err := os.ReadFile(filepath.Join(d.intentDir(), e.Name())); err == nil {
			if json.Unmarshal(data, &rec) != nil || rec.Port != port {
				rec = intentRecord{Port: port}
			}
		}
		recs = append(recs, rec)
	}
	return recs, true
}

// clearIntent removes port's intent record. It need not be synced: a
// record that comes back after a crash of the machine names a port the
// state file records, or nothing left, and is removed again.
func (d *Daemon) clearIntent(port string) {
	if err := os.Remove(d.intentPath(port)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("remove intent record", "port", port, "err", err)
	}
}
