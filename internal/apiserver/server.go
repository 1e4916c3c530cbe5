package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/tapswitch/tapswitch/api"
)

// Backend is what the server serves: the daemon, or a fake in tests.
//
// The methods that change something take the request's context, for the
// wait only. A change (attach, detach, connect, a port's policy, a
// network created or removed) is short and serialised with every other
// under one lock; a request waits its turn, and one whose client hangs
// up while it waits (ctx ends, or ClientGone says so when its turn
// comes) is not carried out. Once a change has begun it runs to the end
// whatever becomes of ctx: it touches the kernel, the firewall and the
// state file in steps that must all be done or all be undone, and one
// left half done because its caller went away would leave more to clean
// up than one finished for nobody, which the caller can undo (detach,
// network rm). A request not carried out returns an error wrapping
// ctx's (api.Abandoned).
type Backend interface {
	Version() api.Version
	Status() api.Status
	Attach(ctx context.Context, req api.AttachRequest) (api.Port, error)
	Detach(ctx context.Context, port string) error
	// UpdatePort changes an attached port's policy.
	UpdatePort(ctx context.Context, port string, req api.PortUpdateRequest) (api.Port, error)
	// Ports lists the container ports, and the gateways too when all.
	Ports(all bool) []api.Port
	FDB(network string) ([]api.FDBEntry, error)
	Networks() []api.Network
	CreateNetwork(ctx context.Context, req api.NetworkCreateRequest) (api.Network, error)
	InspectNetwork(name string) (api.NetworkDetail, error)
	// RemoveNetwork deletes a network; force detaches its ports first.
	RemoveNetwork(ctx context.Context, name string, force bool) error
	Connect(ctx context.Context, network string, req api.ConnectRequest) (api.Port, error)
	// Peers lists the hosts cluster networks reach.
	Peers() []api.Peer
}

// maxBody bounds a request body; the largest real one is a few hundred bytes.
const maxBody = 64 << 10

// NewHandler returns the HTTP handler of the API. Every request is
// checked (validate.go) before the Backend sees it; a bad one gets 400 and
// an Error saying what was wrong and what is allowed. Who may connect is
// Guard's business (access.go).
func NewHandler(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Version())
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Peers())
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		all, err := boolParam(r, "all")
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, b.Ports(all))
	})
	mux.HandleFunc("POST /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		req, err := DecodeAttachRequest(http.MaxBytesReader(w, r.Body, maxBody))
		if err == nil {
			err = ValidateAttach(req)
		}
		if err != nil {
			writeError(w, log, err)
			return
		}
		p, err := b.Attach(r.Context(), req)
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusCreated, p)
	})
	mux.HandleFunc("DELETE /v1/ports/{port}", func(w http.ResponseWriter, r *http.Request) {
		port := r.PathValue("port")
		if err := CheckPortRef(port); err != nil {
			writeError(w, log, fmt.Errorf("detach: %w", err))
			return
		}
		if err := b.Detach(r.Context(), port); err != nil {
			writeError(w, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PATCH /v1/ports/{port}", func(w http.ResponseWriter, r *http.Request) {
		port := r.PathValue("port")
		req, err := DecodePortUpdateRequest(http.MaxBytesReader(w, r.Body, maxBody))
		if err == nil {
			err = CheckPortRef(port)
		}
		if err == nil {
			err = ValidatePortUpdate(req)
		}
		if err != nil {
			writeError(w, log, fmt.Errorf("update port %s: %w", quote(port), err))
			return
		}
		p, err := b.UpdatePort(r.Context(), port, req)
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET /v1/fdb", func(w http.ResponseWriter, r *http.Request) {
		network := r.URL.Query().Get("network")
		if network != "" {
			if err := CheckNetworkRef(network); err != nil {
				writeError(w, log, fmt.Errorf("fdb: %w", err))
				return
			}
		}
		e, err := b.FDB(network)
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, e)
	})
	mux.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Networks())
	})
	mux.HandleFunc("POST /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		req, err := DecodeNetworkCreateRequest(http.MaxBytesReader(w, r.Body, maxBody))
		if err == nil {
			err = ValidateNetworkCreate(req)
		}
		if err != nil {
			writeError(w, log, err)
			return
		}
		n, err := b.CreateNetwork(r.Context(), req)
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusCreated, n)
	})
	mux.HandleFunc("GET /v1/networks/{network}", func(w http.ResponseWriter, r *http.Request) {
		network := r.PathValue("network")
		if err := CheckNetworkRef(network); err != nil {
			writeError(w, log, fmt.Errorf("inspect network: %w", err))
			return
		}
		n, err := b.InspectNetwork(network)
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, n)
	})
	mux.HandleFunc("DELETE /v1/networks/{network}", func(w http.ResponseWriter, r *http.Request) {
		force, err := boolParam(r, "force")
		if err != nil {
			writeError(w, log, err)
			return
		}
		network := r.PathValue("network")
		if err := CheckNetworkRef(network); err != nil {
			writeError(w, log, fmt.Errorf("remove network: %w", err))
			return
		}
		if err := b.RemoveNetwork(r.Context(), network, force); err != nil {
			writeError(w, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/networks/{network}/connect", func(w http.ResponseWriter, r *http.Request) {
		network := r.PathValue("network")
		req, err := DecodeConnectRequest(http.MaxBytesReader(w, r.Body, maxBody))
		if err == nil {
			err = ValidateConnect(network, req)
		}
		if err != nil {
			writeError(w, log, err)
			return
		}
		p, err := b.Connect(r.Context(), network, req)
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusCreated, p)
	})
	registerEvents(mux, b, log)
	mux.HandleFunc("GET /v1/capture", serveCapture(b, log))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, api.Error{Message: fmt.Sprintf("%s %s: method not allowed; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))})
			return
		}
		writeJSON(w, http.StatusNotFound, api.Error{Message: fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// allowed lists the methods mux serves r's path with, for a request
// that fell through to the catch-all: empty when the path is no
// endpoint's.
func allowed(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

// DecodeAttachRequest reads one AttachRequest, refusing unknown fields
// and trailing data, so a typo in a field name is an error, not a default.
func DecodeAttachRequest(r io.Reader) (api.AttachRequest, error) {
	var req api.AttachRequest
	if err := decodeStrict(r, &req, "attach request"); err != nil {
		return api.AttachRequest{}, err
	}
	if req.Netns == "" {
		return api.AttachRequest{}, fmt.Errorf("%w: attach request: netns is required", api.ErrInvalid)
	}
	return req, nil
}

// DecodeNetworkCreateRequest reads one NetworkCreateRequest, as strictly
// as DecodeAttachRequest.
func DecodeNetworkCreateRequest(r io.Reader) (api.NetworkCreateRequest, error) {
	var req api.NetworkCreateRequest
	if err := decodeStrict(r, &req, "network create request"); err != nil {
		return api.NetworkCreateRequest{}, err
	}
	if req.Name == "" {
		return api.NetworkCreateRequest{}, fmt.Errorf("%w: network create request: name is required", api.ErrInvalid)
	}
	return req, nil
}

// DecodeConnectRequest reads one ConnectRequest, as strictly as
// DecodeAttachRequest.
func DecodeConnectRequest(r io.Reader) (api.ConnectRequest, error) {
	var req api.ConnectRequest
	if err := decodeStrict(r, &req, "connect request"); err != nil {
		return api.ConnectRequest{}, err
	}
	if req.Port == "" {
		return api.ConnectRequest{}, fmt.Errorf("%w: connect request: port is required", api.ErrInvalid)
	}
	return req, nil
}

// DecodePortUpdateRequest reads one PortUpdateRequest, as strictly as
// DecodeAttachRequest.
func DecodePortUpdateRequest(r io.Reader) (api.PortUpdateRequest, error) {
	var req api.PortUpdateRequest
	if err := decodeStrict(r, &req, "port update request"); err != nil {
		return api.PortUpdateRequest{}, err
	}
	if req.Empty() {
		return api.PortUpdateRequest{}, fmt.Errorf("%w: port update request: nothing to change; give port_security, mac_limit, storm_broadcast, storm_multicast or storm_unknown", api.ErrInvalid)
	}
	return req, nil
}

// decodeStrict reads exactly one JSON object into v, refusing unknown
// fields and trailing data.
func decodeStrict(r io.Reader, v any, what string) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %w", api.ErrInvalid, what, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s: data after the JSON object", api.ErrInvalid, what)
	}
	return nil
}

// boolParam reads an optional boolean query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: query parameter %s=%q: want true or false", api.ErrInvalid, name, v)
	}
	return b, nil
}

// writeError answers with err's status and an Error body holding its
// message and reason.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	code := api.StatusOf(err)
	switch {
	case code == http.StatusInternalServerError:
		log.Error("request failed", "err", err)
	case api.Abandoned(err):
		// Nobody reads the answer; the log says what was not done.
		drops.log(log, err)
	}
	writeJSON(w, code, api.Error{Message: err.Error(), Reason: api.ReasonOf(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
