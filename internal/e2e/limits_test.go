package e2e

// Bounded resources: a flood of connections to a published port, or to
// the API socket, is turned away at the limits and leaves the API, other
// clients and other networks working. The daemons here run with shrunken
// limits (--max-fds 2048, so a budget of 1024 descriptors, about 170
// proxied connections, and caps of tens) so that each limit is passed
// with hundreds of connections rather than tens of thousands.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/fdlimit"
	"github.com/tapswitch/tapswitch/namespace"
)

// limNetns is newNetns with the "lim" prefix this file's namespaces have.
func (e *testEnv) limNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("lim", role)
}

// serveEcho runs a TCP echo server on port tcpPort and a UDP one on
// udpPort inside ns until the test ends.
func serveEcho(t *testing.T, ns string, tcpPort, udpPort int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := namespace.Do(nsPath(ns), func() error {
		var err error
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", tcpPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", udpPort))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				io.Copy(c, c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// holdConn connects to addr from src and checks that the connection is
// served (an echo comes back); it stays open until the test ends.
func holdConn(t *testing.T, src, addr string) (*net.TCPConn, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	tc := c.(*net.TCPConn)
	return tc, echoOnce(tc, "x")
}

// echoOnce sends msg on c and reads it back.
func echoOnce(c *net.TCPConn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

// refused connects to addr from src and reports whether the connection
// was reset without being served.
func refused(src, addr string) (bool, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n == 0 && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
		return true, nil
	}
	return false, err
}

// isReset reports whether err is the end of a connection the peer closed.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE)
}

// mustRefuse makes n connections to addr, from the sources src gives, and
// fails t unless every one is refused.
func mustRefuse(t *testing.T, n int, addr string, src func(i int) string) {
	t.Helper()
	for i := range n {
		ok, err := refused(src(i), addr)
		if !ok {
			t.Fatalf("connection %d of %d from %s to %s: served (%v); want it refused", i, n, src(i), addr, err)
		}
	}
}

// publishedCounters returns the counters of publish on port name.
func (e *testEnv) publishedCounters(name, publish string) api.PublishedCounters {
	e.t.Helper()
	p := findPort(e.ports(), name)
	if p == nil {
		e.t.Fatalf("tapswitch ports: no port %s", name)
	}
	for _, c := range p.Published {
		if c.Publish == publish {
			return c
		}
	}
	e.t.Fatalf("tapswitch ports: port %s has no counters for %s: %+v", name, publish, p.Published)
	return api.PublishedCounters{}
}

// waitCounters polls publish's counters on port name until ok holds.
func (e *testEnv) waitCounters(name, publish string, ok func(api.PublishedCounters) bool) api.PublishedCounters {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := e.publishedCounters(name, publish)
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("counters of %s on %s: %+v, still not as expected", publish, name, c)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openFDs counts the descriptors pid has open.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("descriptors of pid %d: %v", pid, err)
	}
	return len(ents)
}

// checkAPI shows the control plane working: tapswitch ports, an attach
// and a detach, and a ping between two ports of another network.
func (e *testEnv) checkAPI(network, pingNS, pingIP string) {
	e.t.Helper()
	e.ports()
	ns := e.limNetns("api")
	name := e.attach(ns, "--network", network)
	e.mustCLI("detach", name)
	mustPing(e.t, pingNS, pingIP)
}

// TestLimitsPublishedPort drives each limit of a published port past its
// bound: thousands of connections from one source, hundreds from many
// sources (127.0.0.0/8 on loopback), UDP flows from one source, and
// connections over several ports until the daemon's descriptor budget is
// spent. Each time the new clients are refused and counted, the open
// connections and other sources and ports are still served, the API
// still attaches and detaches, another network still pings, and the
// daemon's descriptors stay within its budget.
func TestLimitsPublishedPort(t *testing.T) {
	const (
		maxFDs         = 2048
		perPort        = 120
		perSource      = 30
		flowsPerSource = 8
	)
	e := newEnvArgs(t, []string{
		"--max-fds", strconv.Itoa(maxFDs),
		"--publish-max-conns", strconv.Itoa(perPort),
		"--publish-max-conns-per-source", strconv.Itoa(perSource),
		"--publish-max-flows-per-source", strconv.Itoa(flowsPerSource),
	})
	budget := maxFDs - fdlimit.ReserveOf(maxFDs)
	// A proxied connection takes 6 descriptors from the budget.
	budgetConns := budget / 6
	pid := e.daemon.cmd.Process.Pid
	if limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid)); err != nil || !strings.Contains(string(limits), fmt.Sprintf("Max open files            %d", maxFDs)) {
		t.Fatalf("tapswitchd --max-fds %d: /proc/%d/limits = %v\n%s", maxFDs, pid, err, limits)
	}

	e.mustCLI("network", "create", "limpub", "--subnet", "10.110.10.0/24")
	e.mustCLI("network", "create", "limoth", "--subnet", "10.110.11.0/24")
	web := e.limNetns("web")
	serveEcho(t, web, 80, 5353)
	p1 := freeHostPort(t, 18110)
	p2 := freeHostPort(t, 18111)
	if p2 == p1 {
		p2 = freeHostPort(t, 0)
	}
	pu := freeHostPort(t, 18112)
	pub1, pub2, pubU := fmt.Sprintf("%d:80/tcp", p1), fmt.Sprintf("%d:80/tcp", p2), fmt.Sprintf("%d:5353/udp", pu)
	e.attach(web, "--network", "limpub", "--name", "limweb", "--publish", pub1, "--publish", pub2, "--publish", pubU)
	nsA, nsB := e.limNetns("a"), e.limNetns("b")
	e.attach(nsA, "--network", "limoth", "--ip", "10.110.11.10/24")
	e.attach(nsB, "--network", "limoth", "--ip", "10.110.11.11/24")
	mustPing(t, nsA, "10.110.11.11")
	addr1, addr2 := fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2)
	baseFDs := openFDs(t, pid)
	t.Logf("tapswitchd: limit %d, budget %d (%d connections), %d descriptors open at rest", maxFDs, budget, budgetConns, baseFDs)

	var held []*net.TCPConn
	hold := func(src, addr string) {
		t.Helper()
		c, err := holdConn(t, src, addr)
		if err != nil {
			t.Fatalf("connection %d from %s to %s: %v; want it served", len(held), src, addr, err)
		}
		held = append(held, c)
	}

	t.Run("per source", func(t *testing.T) {
		for range perSource {
			hold("127.0.0.1", addr1)
		}
		const flood = 2000
		mustRefuse(t, flood, addr1, func(int) string { return "127.0.0.1" })
		c := e.publishedCounters("limweb", pub1)
		if c.Refused["source_limit"] != flood || c.Active != perSource {
			t.Fatalf("counters of %s after %d connections from one source: %+v; want %d refused for source_limit, %d active", pub1, perSource+flood, c, flood, perSource)
		}
		if err := echoOnce(held[0], "still here"); err != nil {
			t.Fatalf("a connection from before the flood: %v; want it still served", err)
		}
		// One warning stands for the flood, not one per connection.
		if n := strings.Count(e.daemonLog(), "reason=source_limit"); n < 1 || n > 3 {
			t.Errorf("%d refusals logged in %d lines; want them rate-limited to one per 10 s", flood, n)
		}
		hold("127.0.0.2", addr1)
		hold("127.0.0.1", addr2)
		e.checkAPI("limpub", nsA, "10.110.11.11")
	})

	t.Run("per port", func(t *testing.T) {
		c := e.publishedCounters("limweb", pub1)
		for i := 0; c.Active+int64(i) < perPort; i++ {
			hold(fmt.Sprintf("127.0.1.%d", 1+i/perSource), addr1)
		}
		const flood = 500
		mustRefuse(t, flood, addr1, func(i int) string { return fmt.Sprintf("127.0.2.%d", 1+i%250) })
		c = e.publishedCounters("limweb", pub1)
		if c.Refused["port_limit"] != flood || c.Active != perPort {
			t.Fatalf("counters of %s: %+v; want %d refused for port_limit, %d active", pub1, c, flood, perPort)
		}
		// Another published port of the same container is another
		// port's business.
		hold("127.0.2.1", addr2)
		e.checkAPI("limpub", nsA, "10.110.11.11")
	})

	t.Run("UDP flows per source", func(t *testing.T) {
		raddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pu}
		var served, dropped int
		for i := range flowsPerSource + 20 {
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}, raddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if udpEcho(c, fmt.Sprintf("flow %d", i), i < flowsPerSource) {
				served++
			} else {
				dropped++
			}
		}
		c := e.waitCounters("limweb", pubU, func(c api.PublishedCounters) bool { return c.Refused["source_limit"] >= 20 })
		if served != flowsPerSource || c.Refused["source_limit"] != 20 || c.Active != flowsPerSource {
			t.Fatalf("%d UDP flows from one source: %d served, counters %+v; want %d served and 20 refused for source_limit", flowsPerSource+20, served, c, flowsPerSource)
		}
		other, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 4)}, raddr)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if !udpEcho(other, "other source", true) {
			t.Fatal("a UDP flow from another source: no answer; want it served")
		}
	})

	t.Run("descriptor budget", func(t *testing.T) {
		// Fill the budget over both TCP ports' remaining room, from
		// sources of 20 connections each, until the first refusal.
		total := int64(0)
		for _, pub := range []string{pub1, pub2} {
			total += e.publishedCounters("limweb", pub).Active
		}
		refusedAt := -1
		for i := 0; i < 2*budgetConns; i++ {
			src := fmt.Sprintf("127.0.3.%d", 1+i/20)
			c, err := holdConn(t, src, addr2)
			if err == nil {
				held = append(held, c)
				continue
			}
			if !isReset(err) {
				t.Fatalf("connection from %s to %s: %v; want it served or reset", src, addr2, err)
			}
			refusedAt = i
			break
		}
		if refusedAt < 0 {
			t.Fatalf("%d connections on top of %d: none refused; want the budget of %d connections spent", 2*budgetConns, total, budgetConns)
		}
		const flood = 300
		mustRefuse(t, flood, addr2, func(i int) string { return fmt.Sprintf("127.0.4.%d", 1+i%250) })
		c := e.publishedCounters("limweb", pub2)
		if c.Refused["descriptors"] < flood {
			t.Fatalf("counters of %s: %+v; want at least %d refused for descriptors", pub2, c, flood)
		}
		open := e.publishedCounters("limweb", pub1).Active + c.Active
		fds := openFDs(t, pid)
		t.Logf("budget spent at %d proxied connections (budget %d); tapswitchd has %d descriptors open of %d, %d at rest", open, budgetConns, fds, maxFDs, baseFDs)
		if open > int64(budgetConns) {
			t.Errorf("%d proxied connections open; want at most the budget's %d", open, budgetConns)
		}
		if fds-baseFDs > budget {
			t.Errorf("tapswitchd has %d descriptors open, %d at rest: outsiders hold %d, more than the budget of %d, eating into the reserve", fds, baseFDs, fds-baseFDs, budget)
		}
		// The control plane, whose descriptors come from the reserve,
		// works with the budget spent.
		e.checkAPI("limpub", nsA, "10.110.11.11")
		if err := echoOnce(held[0], "still here"); err != nil {
			t.Fatalf("a connection from before the budget was spent: %v; want it still served", err)
		}

		// Closing connections gives their descriptors back.
		for _, c := range held[:10] {
			c.Close()
		}
		want := open - 10
		e.waitCounters("limweb", pub1, func(c api.PublishedCounters) bool {
			return c.Active+e.publishedCounters("limweb", pub2).Active <= want
		})
		hold("127.0.5.1", addr2)
	})
}

// udpEcho sends msg on c and reports whether it came back. A datagram
// expected to be dropped is given a shorter wait: its absence is what is
// checked, and a late answer would still count as served.
func udpEcho(c *net.UDPConn, msg string, expect bool) bool {
	wait := 5 * time.Second
	if !expect {
		wait = 500 * time.Millisecond
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return err == nil && string(buf[:n]) == msg
}

// TestLimitsIdleTimeout checks that a published port's connection with
// no data either way for --publish-idle-timeout is closed and counted,
// while one the target keeps talking on stays open.
func TestLimitsIdleTimeout(t *testing.T) {
	const idle = 3 * time.Second
	e := newEnvArgs(t, []string{"--publish-idle-timeout", idle.String()})
	e.mustCLI("network", "create", "limidle", "--subnet", "10.110.20.0/24")
	web := e.limNetns("idle")
	serveEcho(t, web, 80, 5353)
	p := freeHostPort(t, 18120)
	pub := fmt.Sprintf("%d:80/tcp", p)
	e.attach(web, "--network", "limidle", "--name", "limidle", "--publish", pub)
	addr := fmt.Sprintf("127.0.0.1:%d", p)

	quiet, err := holdConn(t, "127.0.0.1", addr)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := holdConn(t, "127.0.0.1", addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 3*idle {
		if err := echoOnce(busy, "ping"); err != nil {
			t.Fatalf("a connection in use for %v: %v; want it open", time.Since(start).Round(time.Second), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	quiet.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := quiet.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection idle for %v: read %d, %v; want it closed after %v", 3*idle, n, err, idle)
	}
	c := e.waitCounters("limidle", pub, func(c api.PublishedCounters) bool { return c.IdleClosed >= 1 })
	if c.IdleClosed != 1 || c.Active != 1 {
		t.Fatalf("counters of %s: %+v; want 1 closed for idleness, 1 active", pub, c)
	}
}

// dialAs connects n times to the Unix socket path with the credentials
// of cred, on a thread of its own that takes them: SO_PEERCRED records
// the connecting thread's. The thread takes root's back after (the saved
// UID stays 0 for that), and is never unlocked, so that were that to
// fail, it would end with its goroutine rather than run others.
func dialAs(path string, cred *syscall.Credential, n int) ([]net.Conn, error) {
	type result struct {
		conns []net.Conn
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		defer func() { ch <- r }()
		old, err := syscall.Getgroups()
		if err != nil {
			r.err = err
			return
		}
		keep := ^uintptr(0)
		defer func() {
			syscall.RawSyscall(syscall.SYS_SETRESUID, keep, 0, keep)
			syscall.RawSyscall(syscall.SYS_SETRESGID, keep, 0, keep)
			g := make([]uint32, len(old)+1)
			for i, v := range old {
				g[i] = uint32(v)
			}
			syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(old)), uintptr(unsafe.Pointer(&g[0])), 0)
		}()
		groups := append([]uint32{cred.Gid}, cred.Groups...)
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
			r.err = fmt.Errorf("setgroups: %w", e)
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, keep, uintptr(cred.Gid), keep); e != 0 {
			r.err = fmt.Errorf("setresgid: %w", e)
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, uintptr(cred.Uid), keep); e != 0 {
			r.err = fmt.Errorf("setresuid: %w", e)
			return
		}
		for range n {
			c, err := net.Dial("unix", path)
			if err != nil {
				r.err = err
				return
			}
			r.conns = append(r.conns, c)
		}
	}()
	r := <-ch
	return r.conns, r.err
}

// TestLimitsAPISocket floods the API socket with idle connections from a
// member of --group: it keeps at most 16 of them open, the rest are
// closed at once, the daemon's descriptors grow by no more, and root's
// CLI still attaches and detaches.
func TestLimitsAPISocket(t *testing.T) {
	requirePrivileged(t, "useradd", "userdel", "groupadd", "groupdel")
	const perUser = 16 // apiMaxConnsPerUser
	group := addGroup(t)
	member, cred := addUser(t, group)
	e := newEnvArgs(t, []string{"--group", group})
	e.openSocketDir()
	// Once it answers, the daemon has set up what it holds at rest.
	e.ports()
	pid := e.daemon.cmd.Process.Pid
	base := openFDs(t, pid)

	const flood = 300
	conns, err := dialAs(e.sock, cred, flood)
	for _, c := range conns {
		defer c.Close()
	}
	if err != nil {
		t.Fatalf("connect to %s as %s: %v", e.sock, member, err)
	}
	// The daemon closes what it turns away: count the connections that
	// see their end, until all but perUser have.
	closed := make([]bool, len(conns))
	deadline := time.Now().Add(8 * time.Second)
	nClosed := 0
	for nClosed < flood-perUser && time.Now().Before(deadline) {
		for i, c := range conns {
			if closed[i] {
				continue
			}
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				closed[i] = true
				nClosed++
			}
		}
	}
	fds := openFDs(t, pid)
	t.Logf("%d API connections from %s: %d closed by the daemon; its descriptors %d, %d before", flood, member, nClosed, fds, base)
	if nClosed != flood-perUser {
		t.Errorf("%d API connections from one user: %d closed at once, want %d (all but %d)", flood, nClosed, flood-perUser, perUser)
	}
	if fds-base > perUser+8 {
		t.Errorf("tapswitchd's descriptors grew from %d to %d with %d connections from one user; want at most %d more", base, fds, flood, perUser)
	}
	// Root is not held up by the user's connections.
	e.ports()
	e.mustCLI("network", "create", "limapi", "--subnet", "10.110.30.0/24")
	ns := e.limNetns("api")
	name := e.attach(ns, "--network", "limapi")
	e.mustCLI("detach", name)
}
