// Command flowcheck sends and checks traffic for the coalescing tests of
// package e2e. Every UDP datagram carries its flow and sequence number
// and a pattern derived from them, and its length is fixed by a schedule
// both ends know; every byte of a TCP stream is a function of its
// offset. So the receiving end can tell a datagram that arrived whole
// from one that was lost, reordered, merged with others, cut or
// corrupted, and a stream that arrived intact from one that did not.
//
//	flowcheck udp-recv -bind IP -port P -flows N -runs SPEC -rounds R
//	flowcheck udp-send -dst IP -port P -flows N -runs SPEC -rounds R
//	flowcheck raw-udp-send -ifname eth0 -src IP -dst IP -dst-mac MAC -port P -flow F -runs SPEC -rounds R [-bad-csum]
//	flowcheck tcp-recv -bind IP -port P -bytes N
//	flowcheck tcp-send -dst IP -port P -bytes N
//
// Receivers print "ready" once they listen; udp-recv then reads until
// every datagram it expects has come, or until its standard input is
// closed and nothing came for -drain; both print their findings as one
// JSON object. It runs inside a namespace with ip netns exec.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hdrLen is the part of a datagram that names it: sequence number (4
// bytes) and flow (4 bytes), big-endian. It is also the shortest
// datagram a schedule may have.
const hdrLen = 8

func main() {
	if len(os.Args) < 2 {
		fatalf("usage: flowcheck udp-recv|udp-send|raw-udp-send|tcp-recv|tcp-send [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	var err error
	switch mode {
	case "udp-recv":
		err = udpRecv(args)
	case "udp-send":
		err = udpSend(args)
	case "raw-udp-send":
		err = rawUDPSend(args)
	case "tcp-recv":
		err = tcpRecv(args)
	case "tcp-send":
		err = tcpSend(args)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fatalf("%s: %v", mode, err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "flowcheck: "+format+"\n", args...)
	os.Exit(1)
}

// run is a burst of n datagrams of one size.
type run struct{ n, size int }

// parseRuns reads a schedule such as "24x1200,1x40": bursts of 24
// datagrams of 1200 bytes, then one of 40.
func parseRuns(spec string) ([]run, error) {
	var runs []run
	for _, f := range strings.Split(spec, ",") {
		ns, ss, ok := strings.Cut(f, "x")
		n, err1 := strconv.Atoi(ns)
		size, err2 := strconv.Atoi(ss)
		if !ok || err1 != nil || err2 != nil || n < 1 || size < hdrLen || size > 65000 {
			return nil, fmt.Errorf("run %q: want NxSIZE with N >= 1 and %d <= SIZE <= 65000", f, hdrLen)
		}
		runs = append(runs, run{n, size})
	}
	return runs, nil
}

// schedule is the order in which the bursts of every flow are sent:
// round after round, the runs of the schedule, each sent for every flow
// in turn, flow f starting f runs further into the list, so that
// datagrams of different sizes and flows interleave on the wire.
type schedule struct {
	runs          []run
	flows, rounds int
}

// bursts calls fn for every burst in the order they are sent, with the
// burst's first sequence number in its flow.
func (s schedule) bursts(fn func(flow, seq int, r run) error) error {
	next := make([]int, s.flows)
	for range s.rounds {
		for j := range s.runs {
			for f := range s.flows {
				r := s.runs[(j+f)%len(s.runs)]
				if err := fn(f, next[f], r); err != nil {
					return err
				}
				next[f] += r.n
			}
		}
	}
	return nil
}

// sizes lists, for each flow, the size of each of its datagrams by
// sequence number.
func (s schedule) sizes() [][]int {
	out := make([][]int, s.flows)
	s.bursts(func(f, _ int, r run) error {
		for range r.n {
			out[f] = append(out[f], r.size)
		}
		return nil
	})
	return out
}

// fill writes datagram seq of flow into b (its whole length).
func fill(b []byte, flow, seq int) {
	binary.BigEndian.PutUint32(b[0:], uint32(seq))
	binary.BigEndian.PutUint32(b[4:], uint32(flow))
	x := uint32(seq)*0x9e3779b9 + uint32(flow)*0x85ebca6b + 1
	for i := hdrLen; i < len(b); i++ {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
}

type scheduleFlags struct {
	runs          string
	flows, rounds int
}

func (sf *scheduleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&sf.runs, "runs", "16x1000", "schedule: bursts NxSIZE, comma-separated")
	fs.IntVar(&sf.flows, "flows", 1, "number of flows")
	fs.IntVar(&sf.rounds, "rounds", 1, "times the schedule is repeated")
}

func (sf *scheduleFlags) schedule() (schedule, error) {
	runs, err := parseRuns(sf.runs)
	if err != nil {
		return schedule{}, err
	}
	if sf.flows < 1 || sf.rounds < 1 {
		return schedule{}, errors.New("-flows and -rounds must be at least 1")
	}
	return schedule{runs: runs, flows: sf.flows, rounds: sf.rounds}, nil
}

// flowResult is what udp-recv found in one flow.
type flowResult struct {
	Flow int `json:"flow"`
	Port int `json:"port"`
	// Expected is how many datagrams the schedule sends in this flow,
	// Received how many arrived (whatever their state).
	Expected int `json:"expected"`
	Received int `json:"received"`
	// Good counts datagrams whole and as sent.
	Good int `json:"good"`
	// Longer counts datagrams longer than sent (merged with others),
	// Shorter those shorter (cut); Corrupt those of the right length
	// whose content is not what was sent; BadHeader those naming another
	// flow or a sequence number the schedule does not have.
	Longer    int `json:"longer"`
	Shorter   int `json:"shorter"`
	Corrupt   int `json:"corrupt"`
	BadHeader int `json:"bad_header"`
	// OutOfOrder counts datagrams whose sequence number is not above
	// the last one's of the flow (reordered or duplicated).
	OutOfOrder int `json:"out_of_order"`
	// FirstError describes the first datagram that was not good.
	FirstError string `json:"first_error,omitempty"`
}

// udpResult is what udp-recv prints.
type udpResult struct {
	Flows []flowResult `json:"flows"`
	// Rcvbuf is the receive buffer each socket got, in bytes.
	Rcvbuf int `json:"rcvbuf"`
}

func udpRecv(args []string) error {
	fs := flag.NewFlagSet("udp-recv", flag.ExitOnError)
	var sf scheduleFlags
	sf.register(fs)
	bind := fs.String("bind", "", "address to bind")
	port := fs.Int("port", 0, "port of flow 0; flow f gets port+f")
	rcvbuf := fs.Int("rcvbuf", 32<<20, "socket receive buffer, bytes")
	drain := fs.Duration("drain", time.Second, "after standard input closes, stop once nothing came for this long")
	timeout := fs.Duration("timeout", 2*time.Minute, "stop after this long whatever happens")
	fs.Parse(args)
	s, err := sf.schedule()
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*bind)
	if err != nil {
		return err
	}
	sizes := s.sizes()
	fds := make([]int, s.flows)
	res := udpResult{Flows: make([]flowResult, s.flows)}
	for f := range fds {
		fd, err := udpSocket(ip)
		if err != nil {
			return err
		}
		// Force: the test runs as root, and the point is that the
		// socket never overflows.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, *rcvbuf); err != nil {
			return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
		res.Rcvbuf, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		// A timeout so that a reader notices the end.
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		if err := unix.Bind(fd, sockaddr(ip, *port+f)); err != nil {
			return fmt.Errorf("bind %s port %d: %w", ip, *port+f, err)
		}
		fds[f] = fd
		res.Flows[f] = flowResult{Flow: f, Port: *port + f, Expected: len(sizes[f])}
	}
	fmt.Println("ready")

	var (
		last    atomic.Int64 // unix nanoseconds of the last datagram
		stop    atomic.Bool
		pending atomic.Int64 // datagrams still expected
		wg      sync.WaitGroup
	)
	last.Store(time.Now().UnixNano())
	for f := range fds {
		pending.Add(int64(len(sizes[f])))
		wg.Go(func() {
			r := &res.Flows[f]
			buf := make([]byte, 1<<16)
			want := make([]byte, 1<<16)
			lastSeq := -1
			for !stop.Load() {
				n, _, err := unix.Recvfrom(fds[f], buf, 0)
				if err != nil {
					continue // the timeout, or a signal
				}
				last.Store(time.Now().UnixNano())
				r.Received++
				pending.Add(-1)
				check(r, buf[:n], want, sizes[f], &lastSeq)
			}
		})
	}
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	deadline := time.Now().Add(*timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	closed := false
	for range tick.C {
		select {
		case <-eof:
			closed = true
		default:
		}
		idle := time.Since(time.Unix(0, last.Load()))
		if pending.Load() <= 0 || (closed && idle >= *drain) || time.Now().After(deadline) {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// check records what datagram b of flow r.Flow is.
func check(r *flowResult, b, want []byte, sizes []int, lastSeq *int) {
	bad := func(format string, args ...any) {
		if r.FirstError == "" {
			r.FirstError = fmt.Sprintf(format, args...)
		}
	}
	if len(b) < hdrLen {
		r.Shorter++
		bad("datagram of %d bytes, shorter than any sent", len(b))
		return
	}
	seq, flow := int(binary.BigEndian.Uint32(b)), int(binary.BigEndian.Uint32(b[4:]))
	if flow != r.Flow || seq >= len(sizes) {
		r.BadHeader++
		bad("datagram of %d bytes names flow %d seq %d; want flow %d, seq < %d", len(b), flow, seq, r.Flow, len(sizes))
		return
	}
	if seq <= *lastSeq {
		r.OutOfOrder++
		bad("seq %d after seq %d", seq, *lastSeq)
	}
	*lastSeq = max(*lastSeq, seq)
	size := sizes[seq]
	switch {
	case len(b) > size:
		r.Longer++
		bad("seq %d: %d bytes, sent %d (merged?)", seq, len(b), size)
		return
	case len(b) < size:
		r.Shorter++
		bad("seq %d: %d bytes, sent %d", seq, len(b), size)
		return
	}
	fill(want[:size], flow, seq)
	for i := range size {
		if b[i] != want[i] {
			r.Corrupt++
			bad("seq %d (%d bytes): byte %d is %#02x, sent %#02x", seq, size, i, b[i], want[i])
			return
		}
	}
	r.Good++
}

func udpSocket(ip netip.Addr) (int, error) {
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	return fd, nil
}

func sockaddr(ip netip.Addr, port int) unix.Sockaddr {
	if ip.Is4() {
		return &unix.SockaddrInet4{Addr: ip.As4(), Port: port}
	}
	return &unix.SockaddrInet6{Addr: ip.As16(), Port: port}
}

// sendResult is what the senders print.
type sendResult struct {
	// Sent counts datagrams the kernel took (a UDP socket takes what a
	// full device queue then drops, so this is not what left).
	Sent    int     `json:"sent"`
	Seconds float64 `json:"seconds"`
}

func udpSend(args []string) error {
	fs := flag.NewFlagSet("udp-send", flag.ExitOnError)
	var sf scheduleFlags
	sf.register(fs)
	dst := fs.String("dst", "", "receiver's address")
	port := fs.Int("port", 0, "port of flow 0; flow f goes to port+f")
	pause := fs.Duration("pause", 0, "pause after each round of the schedule")
	fs.Parse(args)
	s, err := sf.schedule()
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*dst)
	if err != nil {
		return err
	}
	fds := make([]int, s.flows)
	for f := range fds {
		fd, err := udpSocket(ip)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20); err != nil {
			return fmt.Errorf("SO_SNDBUFFORCE: %w", err)
		}
		if err := unix.Connect(fd, sockaddr(ip, *port+f)); err != nil {
			return fmt.Errorf("connect %s port %d: %w", ip, *port+f, err)
		}
		fds[f] = fd
	}
	// One buffer per datagram of the longest burst, sent with one
	// sendmmsg: a burst leaves the socket back to back.
	longest := 0
	for _, r := range s.runs {
		longest = max(longest, r.n)
	}
	bufs := make([][]byte, longest)
	for i := range bufs {
		bufs[i] = make([]byte, 65000)
	}
	iovs := make([]unix.Iovec, longest)
	msgs := make([]unix.Mmsghdr, longest)
	res := sendResult{}
	start := time.Now()
	perRound := 0
	for _, r := range s.runs {
		perRound += r.n * s.flows
	}
	err = s.bursts(func(f, seq int, r run) error {
		for i := range r.n {
			b := bufs[i][:r.size]
			fill(b, f, seq+i)
			iovs[i] = unix.Iovec{Base: &b[0]}
			iovs[i].SetLen(len(b))
			msgs[i] = unix.Mmsghdr{}
			msgs[i].Hdr.Iov = &iovs[i]
			msgs[i].Hdr.SetIovlen(1)
		}
		for done := 0; done < r.n; {
			n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fds[f]), uintptr(unsafe.Pointer(&msgs[done])), uintptr(r.n-done), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				return fmt.Errorf("sendmmsg flow %d: %w", f, errno)
			}
			done += int(n)
			res.Sent += int(n)
		}
		if *pause > 0 && res.Sent%perRound == 0 {
			time.Sleep(*pause)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// rawUDPSend sends the datagrams of one flow as whole Ethernet frames
// through a packet socket, with UDP checksums computed here: right, or
// with -bad-csum deliberately wrong. Such frames reach the switch with
// no checksum flag in their virtio net header.
func rawUDPSend(args []string) error {
	fs := flag.NewFlagSet("raw-udp-send", flag.ExitOnError)
	var sf scheduleFlags
	sf.register(fs)
	ifname := fs.String("ifname", "eth0", "interface to send on")
	src := fs.String("src", "", "source address (the interface's own)")
	dst := fs.String("dst", "", "destination address")
	dstMAC := fs.String("dst-mac", "", "destination MAC")
	port := fs.Int("port", 0, "destination port of flow 0; flow f goes to port+f")
	flow := fs.Int("flow", 0, "the flow to send (-flows says how many the schedule has)")
	badCsum := fs.Bool("bad-csum", false, "send every datagram with a wrong UDP checksum")
	fs.Parse(args)
	s, err := sf.schedule()
	if err != nil {
		return err
	}
	srcIP, err1 := netip.ParseAddr(*src)
	dstIP, err2 := netip.ParseAddr(*dst)
	mac, err3 := net.ParseMAC(*dstMAC)
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	if srcIP.Is4() != dstIP.Is4() {
		return errors.New("-src and -dst of different families")
	}
	ifi, err := net.InterfaceByName(*ifname)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		return fmt.Errorf("bind %s: %w", *ifname, err)
	}
	frame := make([]byte, 14+40+8+65000)
	sport := 40000 + *flow
	id := uint16(1)
	res := sendResult{}
	start := time.Now()
	err = s.bursts(func(f, seq int, r run) error {
		if f != *flow {
			return nil
		}
		for i := range r.n {
			b := buildUDPFrame(frame, ifi.HardwareAddr, mac, srcIP, dstIP, sport, *port+f, id, r.size, f, seq+i, *badCsum)
			id++
			if _, err := unix.Write(fd, b); err != nil {
				return fmt.Errorf("write %s: %w", *ifname, err)
			}
			res.Sent++
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// buildUDPFrame writes into buf an Ethernet frame holding datagram seq of
// flow, size bytes of payload, and returns it.
func buildUDPFrame(buf []byte, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, sport, dport int, id uint16, size, flow, seq int, badCsum bool) []byte {
	copy(buf[0:6], dstMAC)
	copy(buf[6:12], srcMAC)
	var ip []byte
	udpLen := 8 + size
	if src.Is4() {
		binary.BigEndian.PutUint16(buf[12:], 0x0800)
		ip = buf[14 : 14+20]
		clear(ip)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		binary.BigEndian.PutUint16(ip[4:], id)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = unix.IPPROTO_UDP
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))
	} else {
		binary.BigEndian.PutUint16(buf[12:], 0x86dd)
		ip = buf[14 : 14+40]
		clear(ip)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6] = unix.IPPROTO_UDP
		ip[7] = 64
		s16, d16 := src.As16(), dst.As16()
		copy(ip[8:24], s16[:])
		copy(ip[24:40], d16[:])
	}
	udp := buf[14+len(ip) : 14+len(ip)+udpLen]
	binary.BigEndian.PutUint16(udp[0:], uint16(sport))
	binary.BigEndian.PutUint16(udp[2:], uint16(dport))
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	binary.BigEndian.PutUint16(udp[6:], 0)
	fill(udp[8:], flow, seq)
	// The pseudo-header: addresses, protocol, UDP length.
	var acc uint32
	if src.Is4() {
		acc = sum(ip[12:20], 0)
	} else {
		acc = sum(ip[8:40], 0)
	}
	acc += unix.IPPROTO_UDP + uint32(udpLen)
	c := ^fold(sum(udp, acc))
	if c == 0 {
		c = 0xffff
	}
	if badCsum {
		// Wrong, and never 0 (no checksum, for IPv4) nor 0xffff (its
		// other spelling).
		c ^= 0x5a5a
		if c == 0 || c == 0xffff {
			c = 0x1234
		}
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return buf[:14+len(ip)+udpLen]
}

// sum adds b as big-endian 16-bit words to acc, the one's complement way
// (folded later).
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// patternWord is the 8 bytes of a TCP stream at offset 8*k:
// splitmix64 of k.
func patternWord(k uint64) uint64 {
	z := k + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// pattern fills b with the stream's bytes from offset off on.
func pattern(b []byte, off uint64) {
	for i := range b {
		o := off + uint64(i)
		b[i] = byte(patternWord(o/8) >> (8 * (o % 8)))
	}
}

// tcpResult is what tcp-recv prints.
type tcpResult struct {
	Bytes uint64 `json:"bytes"`
	// Mismatches counts bytes that differ from the pattern; FirstMismatch
	// is the offset of the first, -1 for none.
	Mismatches    uint64  `json:"mismatches"`
	FirstMismatch int64   `json:"first_mismatch"`
	Seconds       float64 `json:"seconds"`
	Error         string  `json:"error,omitempty"`
}

func tcpRecv(args []string) error {
	fs := flag.NewFlagSet("tcp-recv", flag.ExitOnError)
	bind := fs.String("bind", "", "address to listen on")
	port := fs.Int("port", 0, "port to listen on")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	fs.Parse(args)
	ln, err := net.Listen("tcp", net.JoinHostPort(*bind, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	ln.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	res := tcpResult{FirstMismatch: -1}
	start := time.Now()
	buf := make([]byte, 256<<10)
	want := make([]byte, len(buf))
	for {
		n, err := c.Read(buf)
		if n > 0 {
			pattern(want[:n], res.Bytes)
			for i := range n {
				if buf[i] != want[i] {
					if res.FirstMismatch < 0 {
						res.FirstMismatch = int64(res.Bytes) + int64(i)
					}
					res.Mismatches++
				}
			}
			res.Bytes += uint64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			res.Error = err.Error()
			break
		}
	}
	res.Seconds = time.Since(start).Seconds()
	c.Close()
	return json.NewEncoder(os.Stdout).Encode(res)
}

func tcpSend(args []string) error {
	fs := flag.NewFlagSet("tcp-send", flag.ExitOnError)
	dst := fs.String("dst", "", "receiver's address")
	port := fs.Int("port", 0, "receiver's port")
	total := fs.Uint64("bytes", 64<<20, "bytes to send")
	timeout := fs.Duration("timeout", time.Minute, "stop sending after this long, and say so")
	fs.Parse(args)
	c, err := net.DialTimeout("tcp", net.JoinHostPort(*dst, strconv.Itoa(*port)), 10*time.Second)
	if err != nil {
		return err
	}
	// A stream that stalls (its segments dropped on the way) ends with
	// what was sent and the error, rather than hanging.
	c.SetWriteDeadline(time.Now().Add(*timeout))
	buf := make([]byte, 256<<10)
	start := time.Now()
	res := struct {
		Bytes   uint64  `json:"bytes"`
		Seconds float64 `json:"seconds"`
		Error   string  `json:"error,omitempty"`
	}{}
	for res.Bytes < *total {
		n := min(uint64(len(buf)), *total-res.Bytes)
		pattern(buf[:n], res.Bytes)
		w, err := c.Write(buf[:n])
		res.Bytes += uint64(w)
		if err != nil {
			res.Error = fmt.Sprintf("write at offset %d: %v", res.Bytes, err)
			// Reset rather than wait to deliver the rest: the receiver
			// ends at once.
			c.(*net.TCPConn).SetLinger(0)
			break
		}
	}
	if err := c.Close(); err != nil && res.Error == "" {
		res.Error = err.Error()
	}
	res.Seconds = time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}
