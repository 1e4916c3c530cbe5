package publish

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestTCPHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	targetPort := addrPort(srv.Listener.Addr()).Port()

	tests := []struct {
		name   string
		hostIP netip.Addr
		// dial is the host address the client connects to.
		dial string
	}{
		{name: "IPv4 host address", hostIP: loopback4, dial: "127.0.0.1"},
		{name: "IPv6 host address", hostIP: loopback6, dial: "::1"},
		{name: "all addresses over IPv4", dial: "127.0.0.1"},
		{name: "all addresses over IPv6", dial: "::1"},
		{name: "all IPv4 addresses", hostIP: netip.IPv4Unspecified(), dial: "127.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Mapping{Proto: "tcp", HostIP: tt.hostIP, TargetPort: targetPort}
			p := startProxy(t, m, loopback4, testLimits)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			url := "http://" + proxyAddr(t, p, tt.dial) + "/index.html"
			resp, err := client.Get(url)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "hello from /index.html"; err != nil || string(body) != want {
				t.Fatalf("GET %s = %q, %v, want %q", url, body, err, want)
			}
			waitFor(t, "the connection to end", func() bool { return p.Stats().Active == 0 })
			if s := p.Stats(); s.Total != 1 || s.BytesToTarget == 0 || s.BytesToClient <= uint64(len(body)) {
				t.Fatalf("Stats() = %+v, want 1 connection and bytes both ways", s)
			}
		})
	}
}

func TestTCPHalfClose(t *testing.T) {
	// The target answers only once it has read to EOF, as a server for
	// a protocol that ends a request by shutting down the sending side.
	port := serveTCP(t, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "got %d bytes", n)
	})
	p := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: port}, loopback4, testLimits)

	c, err := net.Dial("tcp", proxyAddr(t, p, "127.0.0.1"))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	const size = 300 << 10
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got, err := io.ReadAll(c)
	if want := fmt.Sprintf("got %d bytes", size); err != nil || string(got) != want {
		t.Fatalf("reply after CloseWrite = %q, %v, want %q", got, err, want)
	}
}

func TestTCPConcurrent(t *testing.T) {
	port := serveTCP(t, tcpEcho)
	p := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: port}, loopback4, testLimits)
	addr := proxyAddr(t, p, "127.0.0.1")

	const conns, size = 64, 128 << 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			errs <- echoThrough(addr, size, i)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	waitFor(t, "connections to end", func() bool { return p.Stats().Active == 0 })
	want := Stats{Total: conns, BytesToTarget: conns * size, BytesToClient: conns * size}
	if s := p.Stats(); !reflect.DeepEqual(s, want) {
		t.Fatalf("Stats() = %+v, want %+v", s, want)
	}
}

// echoThrough sends size random bytes to an echo server through addr and
// checks that the same come back.
func echoThrough(addr string, size, i int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("conn %d: Dial: %v", i, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	data := make([]byte, size)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err := <-werr; err != nil {
		return fmt.Errorf("conn %d: Write: %v", i, err)
	}
	if err != nil || !bytes.Equal(got, data) {
		return fmt.Errorf("conn %d: echo = %d bytes, %v, want the %d bytes sent", i, len(got), err, size)
	}
	return nil
}

func TestTCPTargetDown(t *testing.T) {
	p := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: closedPort(t)}, loopback4, testLimits)

	start := time.Now()
	// On loopback the reset can beat Dial's own check of the handshake,
	// so an error from Dial is as good as one from Read.
	c, err := net.Dial("tcp", proxyAddr(t, p, "127.0.0.1"))
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(start.Add(3 * time.Second))
		var n int
		n, err = c.Read(make([]byte, 1))
		if err == nil || isTimeout(err) {
			t.Fatalf("Read through a proxy to a closed port = %d, %v, want the connection closed", n, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("connection closed after %v, want under 1s", d)
	}
	waitFor(t, "the failure to be counted", func() bool {
		s := p.Stats()
		return s.Failed == 1 && s.Active == 0
	})
}

func TestTCPResetPropagates(t *testing.T) {
	// The target resets every connection after reading a line; the
	// client must see its connection end rather than hang on the
	// direction that saw no error.
	port := serveTCP(t, func(c *net.TCPConn) {
		c.Read(make([]byte, 64))
		c.SetLinger(0)
	})
	p := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: port}, loopback4, testLimits)
	c, err := net.Dial("tcp", proxyAddr(t, p, "127.0.0.1"))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("Read after the target reset = %d, %v, want the connection closed", n, err)
	}
	waitFor(t, "the connection to end", func() bool { return p.Stats().Active == 0 })
}
