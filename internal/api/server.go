package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// Backend is what the server serves: the daemon, or a fake in tests.
type Backend interface {
	Version() Version
	Attach(ctx context.Context, req AttachRequest) (Port, error)
	Detach(ctx context.Context, port string) error
	Ports() []Port
	FDB(network string) ([]FDBEntry, error)
	Networks() []Network
}

// maxBody bounds a request body; the largest real one is a few hundred bytes.
const maxBody = 64 << 10

// NewHandler returns the HTTP handler of the API.
func NewHandler(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Version())
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Ports())
	})
	mux.HandleFunc("POST /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		req, err := DecodeAttachRequest(http.MaxBytesReader(w, r.Body, maxBody))
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
		if err := b.Detach(r.Context(), r.PathValue("port")); err != nil {
			writeError(w, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/fdb", func(w http.ResponseWriter, r *http.Request) {
		e, err := b.FDB(r.URL.Query().Get("network"))
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, e)
	})
	mux.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Networks())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, Error{Message: fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// DecodeAttachRequest reads one AttachRequest, refusing unknown fields
// and trailing data, so a typo in a field name is an error, not a default.
func DecodeAttachRequest(r io.Reader) (AttachRequest, error) {
	var req AttachRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return AttachRequest{}, fmt.Errorf("%w: attach request: %v", ErrInvalid, err)
	}
	if dec.More() {
		return AttachRequest{}, fmt.Errorf("%w: attach request: data after the JSON object", ErrInvalid)
	}
	if req.Netns == "" {
		return AttachRequest{}, fmt.Errorf("%w: attach request: netns is required", ErrInvalid)
	}
	return req, nil
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		log.Error("request failed", "err", err)
	}
	writeJSON(w, code, Error{Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
