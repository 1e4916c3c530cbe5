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

// saveLocked writes the state file; d.mu must be held.
func (d *Daemon) saveLocked() {
	if d.state.path == "" {
		return
	}
	if err := writeAtomic(d.state.path, d.stateLocked()); err != nil {
		d.log.Error("write state", "path", d.state.path, "err", err)
	}
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
		doc.Networks = append(doc.Networks, networkState{Name: n.name, Internal: n.internal, Subnet: n.subnet.State()})
	}
	for _, p := range d.ports {
		if p.kind == api.KindContainer {
			doc.Ports = append(doc.Ports, p.state)
		}
	}
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
