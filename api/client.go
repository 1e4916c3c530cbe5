package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client talks to a tapswitchd over its Unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client of the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	// Attaching does real work in the kernel; a minute bounds a hung daemon.
	return &Client{socket: socket, hc: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// DaemonError is an error the daemon returned: its HTTP status and its
// Error body. errors.Is matches it against the class of its status
// (ErrInvalid for 400, ...).
type DaemonError struct {
	Status  int
	Message string
	// Reason is the body's reason; empty when the daemon gave none.
	Reason Reason
}

func (e *DaemonError) Error() string { return e.Message }

// Is reports whether target is e's class.
func (e *DaemonError) Is(target error) bool {
	for _, c := range classes {
		if c.err == target {
			return c.status == e.Status
		}
	}
	return false
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tapswitchd"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read reply from tapswitchd: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("tapswitchd answered %s", resp.Status)
		}
		return &DaemonError{Status: resp.StatusCode, Message: e.Message, Reason: e.Reason}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode reply from tapswitchd: %w", err)
	}
	return nil
}

// connError says that the daemon could not be reached, and why: a socket
// that is not there (fs.ErrNotExist), nobody listening on it
// (syscall.ECONNREFUSED), no permission (fs.ErrPermission), which
// errors.Is finds in it.
func (c *Client) connError(err error) error {
	// The dial's error says what failed; the transport's around it only
	// repeats the request and the socket.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		err = op.Err
	}
	return fmt.Errorf("cannot connect to tapswitchd at %s: %w", c.socket, err)
}

// Socket is the path of the daemon's socket c connects to.
func (c *Client) Socket() string { return c.socket }

// Version asks the daemon which build it is.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	err := c.do(ctx, http.MethodGet, "/v1/version", nil, &v)
	return v, err
}

// Status asks the daemon how it is doing.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// Attach creates and attaches a port.
func (c *Client) Attach(ctx context.Context, req AttachRequest) (Port, error) {
	var p Port
	err := c.do(ctx, http.MethodPost, "/v1/ports", req, &p)
	return p, err
}

// Detach removes a port by name or id.
func (c *Client) Detach(ctx context.Context, port string) error {
	return c.do(ctx, http.MethodDelete, "/v1/ports/"+url.PathEscape(port), nil, nil)
}

// UpdatePort changes the policy of a port given by name or id.
func (c *Client) UpdatePort(ctx context.Context, port string, req PortUpdateRequest) (Port, error) {
	var p Port
	err := c.do(ctx, http.MethodPatch, "/v1/ports/"+url.PathEscape(port), req, &p)
	return p, err
}

// Ports lists the attached container ports.
func (c *Client) Ports(ctx context.Context) ([]Port, error) {
	var p []Port
	err := c.do(ctx, http.MethodGet, "/v1/ports", nil, &p)
	return p, err
}

// AllPorts lists every port, the networks' gateway ports included.
func (c *Client) AllPorts(ctx context.Context) ([]Port, error) {
	var p []Port
	err := c.do(ctx, http.MethodGet, "/v1/ports?all=true", nil, &p)
	return p, err
}

// FDB lists learned MACs, of one network or of all when network is "".
func (c *Client) FDB(ctx context.Context, network string) ([]FDBEntry, error) {
	var e []FDBEntry
	path := "/v1/fdb"
	if network != "" {
		path += "?network=" + url.QueryEscape(network)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &e)
	return e, err
}

// Networks lists the networks.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var n []Network
	err := c.do(ctx, http.MethodGet, "/v1/networks", nil, &n)
	return n, err
}

// CreateNetwork creates a network.
func (c *Client) CreateNetwork(ctx context.Context, req NetworkCreateRequest) (Network, error) {
	var n Network
	err := c.do(ctx, http.MethodPost, "/v1/networks", req, &n)
	return n, err
}

// InspectNetwork describes one network and its ports.
func (c *Client) InspectNetwork(ctx context.Context, name string) (NetworkDetail, error) {
	var n NetworkDetail
	err := c.do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(name), nil, &n)
	return n, err
}

// RemoveNetwork deletes a network; with force, its ports are detached
// first instead of the removal being refused.
func (c *Client) RemoveNetwork(ctx context.Context, name string, force bool) error {
	path := "/v1/networks/" + url.PathEscape(name)
	if force {
		path += "?force=true"
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// Connect gives the namespace of req.Port another port, on network.
func (c *Client) Connect(ctx context.Context, network string, req ConnectRequest) (Port, error) {
	var p Port
	err := c.do(ctx, http.MethodPost, "/v1/networks/"+url.PathEscape(network)+"/connect", req, &p)
	return p, err
}

// Peers lists the hosts cluster networks reach: the cluster's members
// (this host included) and the static peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var out []Peer
	err := c.do(ctx, http.MethodGet, "/v1/peers", nil, &out)
	return out, err
}
