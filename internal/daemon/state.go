package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/tapswitch/tapswitch/internal/api"
)

// portState is what the state file records of a port: the request that
// made it and what the daemon chose for it.
type portState struct {
	Request api.AttachRequest `json:"request"`
	Name    string            `json:"name"`
	Network string            `json:"network"`
	MAC     string            `json:"mac"`
}

// stateFile is the daemon's record of its ports, rewritten whole on every
// change: written to a temporary file, synced, then renamed over the old
// one, so a reader (or a restarted daemon) sees the old or the new state,
// never a torn one.
type stateFile struct {
	path string
}

type stateDoc struct {
	Version int         `json:"version"`
	Ports   []portState `json:"ports"`
}

func openState(dir string) (*stateFile, error) {
	if dir == "" {
		return &stateFile{}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &stateFile{path: filepath.Join(dir, "state.json")}, nil
}

func (d *Daemon) saveLocked() {
	if d.state.path == "" {
		return
	}
	doc := stateDoc{Version: 1, Ports: make([]portState, 0, len(d.ports))}
	for _, p := range d.ports {
		doc.Ports = append(doc.Ports, p)
	}
	slices.SortFunc(doc.Ports, func(a, b portState) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	if err := writeAtomic(d.state.path, doc); err != nil {
		d.log.Error("write state", "path", d.state.path, "err", err)
	}
}

func writeAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*.json")
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
	return os.Rename(tmp.Name(), path)
}
