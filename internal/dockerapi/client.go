package dockerapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// DefaultHost is dockerd's socket when neither --docker-host nor
// DOCKER_HOST says otherwise.
const DefaultHost = "unix:///var/run/docker.sock"

// ErrUnreachable wraps every failure to reach dockerd or to read its
// answer: the caller keeps what it has and tries again later.
var ErrUnreachable = errors.New("dockerapi: dockerd unreachable")

// ErrNotFound is dockerd's 404: no such network or container.
var ErrNotFound = errors.New("dockerapi: not found")

// maxBody bounds what is read of one answer of dockerd, an event included:
// a network with thousands of containers fits, a runaway answer does not.
const maxBody = 16 << 20

// Client talks to one dockerd.
type Client struct {
	host string
	hc   *http.Client
}

// New returns a client of the dockerd at host, a URL such as
// unix:///var/run/docker.sock (as DOCKER_HOST); "" is DefaultHost. Only
// Unix sockets are supported: dockerd's network plugins run beside it.
func New(host string) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	path, err := SocketPath(host)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		// A connection per question: the sync asks seldom, and keeps
		// no descriptor open between questions (the event stream has
		// its own).
		DisableKeepAlives: true,
	}
	return &Client{host: host, hc: &http.Client{Transport: tr}}, nil
}

// SocketPath is the socket file of a unix:// host URL.
func SocketPath(host string) (string, error) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "unix" || u.Path == "" || u.Host != "" {
		return "", fmt.Errorf("dockerapi: docker host %q: want unix:///path/to/docker.sock", host)
	}
	return u.Path, nil
}

// Host is the URL the client was made for.
func (c *Client) Host() string { return c.host }

// Close lets go of idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// get asks dockerd for path and decodes its JSON answer into out.
func (c *Client) get(ctx context.Context, path string, out any) error {
	resp, err := c.do(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%w: GET %s: %w", ErrUnreachable, path, err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("%w: GET %s: answer over %d bytes", ErrUnreachable, path, maxBody)
	}
	if err := decode(data, out); err != nil {
		return fmt.Errorf("%w: GET %s: %w", ErrUnreachable, path, err)
	}
	return nil
}

// decode decodes an answer of dockerd.
func decode(data []byte, out any) error { return json.Unmarshal(data, out) }

// do sends a GET of path and returns a 200's response; any other status
// is an error carrying dockerd's message.
func (c *Client) do(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return nil, fmt.Errorf("dockerapi: GET %s: %w", path, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.host, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	msg := errorMessage(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: GET %s: %s", ErrNotFound, path, msg)
	}
	return nil, fmt.Errorf("%w: GET %s: %s: %s", ErrUnreachable, path, resp.Status, msg)
}

// errorMessage is the message of dockerd's {"message": "..."} error body,
// or the body itself.
func errorMessage(r io.Reader) string {
	data, _ := io.ReadAll(r)
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &e) == nil && e.Message != "" {
		return e.Message
	}
	return strings.TrimSpace(string(data))
}

// Ping reports whether dockerd answers.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.do(ctx, "/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Network is what dockerd says of one network.
type Network struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Driver string `json:"Driver"`
	// Containers are the network's endpoints by container id, as
	// network inspect gives them; empty in a list of networks.
	Containers map[string]Endpoint `json:"Containers"`
}

// Endpoint is a container's endpoint on a network.
type Endpoint struct {
	// Name is the container's name, without the leading slash.
	Name       string `json:"Name"`
	EndpointID string `json:"EndpointID"`
	MacAddress string `json:"MacAddress"`
}

// Network inspects the network id (or name).
func (c *Client) Network(ctx context.Context, id string) (Network, error) {
	var n Network
	err := c.get(ctx, "/networks/"+url.PathEscape(id), &n)
	return n, err
}

// Networks lists the networks of driver ("" for all), without their
// endpoints.
func (c *Client) Networks(ctx context.Context, driver string) ([]Network, error) {
	path := "/networks"
	if driver != "" {
		path += "?filters=" + url.QueryEscape(filters("driver", driver))
	}
	var out []Network
	err := c.get(ctx, path, &out)
	return out, err
}

// Container is one container of a list.
type Container struct {
	ID string `json:"Id"`
	// Names are as dockerd lists them, with a leading slash.
	Names []string `json:"Names"`
	State string   `json:"State"`
}

// Name is the container's name without the leading slash, or "".
func (c Container) Name() string {
	for _, n := range c.Names {
		// Links list more names, with a slash inside: the container's
		// own has none besides the first.
		n = strings.TrimPrefix(n, "/")
		if n != "" && !strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}

// Containers lists every container, running or not.
func (c *Client) Containers(ctx context.Context) ([]Container, error) {
	var out []Container
	err := c.get(ctx, "/containers/json?all=1", &out)
	return out, err
}

// Event is one event of dockerd's stream, with what is used of it.
type Event struct {
	// Type is "network", "container", ... and Action "create",
	// "connect", "disconnect", "destroy", "start", "die", "rename", ...
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  Actor  `json:"Actor"`
}

// Actor is what an event is about: a network's or container's id and
// attributes (network events: name, type (the driver), container;
// container events: name, image).
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// DecodeEvent decodes one event of the stream.
func DecodeEvent(line []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return Event{}, fmt.Errorf("dockerapi: event: %w", err)
	}
	return ev, nil
}

// Events streams dockerd's network and container events to fn, from now
// until ctx ends or dockerd goes away, which it returns as an error
// wrapping ErrUnreachable. ready, if set, is called once the stream is
// open: from then on no event is missed.
func (c *Client) Events(ctx context.Context, ready func(), fn func(Event)) error {
	path := "/events?filters=" + url.QueryEscape(filters("type", "network", "container"))
	resp, err := c.do(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ready != nil {
		ready()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxBody)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		ev, err := DecodeEvent(line)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		fn(ev)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: event stream: %w", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: event stream ended", ErrUnreachable)
}

// filters is the JSON of dockerd's filters parameter for one key.
func filters(key string, values ...string) string {
	m := map[string][]string{key: values}
	data, _ := json.Marshal(m)
	return string(data)
}
