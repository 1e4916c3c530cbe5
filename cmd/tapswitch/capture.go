package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

func newCapture(g *globals) *cobra.Command {
	var (
		req  api.CaptureRequest
		file string
	)
	cmd := &cobra.Command{
		Use:   "capture [PORT] [--network NET] [-w FILE|-] [-c N] [-f FILTER] [-s SNAPLEN]",
		Short: "Capture the frames of a port or a network, like tcpdump",
		Long: `capture shows the frames a port sends and is sent (both directions), or
with --network every frame of a network, one line each, or writes them as
pcapng with -w (- for standard output) for tshark, tcpdump or Wireshark:
one interface per port, named after it, each packet flagged inbound (the
port sent it) or outbound (it was sent to the port). TCP super-frames are
written as the wire-sized segments they stand for.

The filter is tcpdump's language (man 7 pcap-filter). The capture ends
after -c packets, on Ctrl-C, or when the port or network goes; then the
counts go to standard error: packets captured (a TCP super-frame counts
as the segments written for it), and of the frames the switch offered
(a super-frame counts once), those lost because the capture fell behind
(the switch never waits for a capture).`,
		Example: `  tapswitch capture web -w web.pcap -c 1000
  tapswitch capture --network front -w - | tshark -r -
  tapswitch capture web -f 'tcp port 80'`,
		Args: cobra.MaximumNArgs(1),
	}
	f := cmd.Flags()
	f.StringVar(&req.Network, "network", "", "capture every frame of this network")
	f.StringVarP(&file, "write", "w", "", "write pcapng to FILE, or to standard output with -")
	f.Uint64VarP(&req.Count, "count", "c", 0, "end after this many packets (default: until Ctrl-C)")
	f.StringVarP(&req.Filter, "filter", "f", "", "keep only the packets this tcpdump filter takes, e.g. 'tcp port 80'")
	f.IntVarP(&req.SnapLen, "snaplen", "s", 0, "keep this many bytes of each packet (default 262144, whole)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			req.Port = args[0]
		}
		switch {
		case req.Port == "" && req.Network == "":
			return errors.New("capture what? name a port (tapswitch capture web) or a network (--network NET); tapswitch ports lists them")
		case req.Port != "" && req.Network != "":
			return errors.New("name a port or --network, not both")
		case req.SnapLen < 0:
			return errors.New("--snaplen must be 0 (whole packets) or more")
		}
		// The file is opened before the capture starts, so that a path
		// that cannot be written fails before anything is asked of
		// tapswitchd; a capture that cannot start leaves no file.
		var out *os.File
		if file != "" && file != "-" {
			var err error
			if out, err = os.Create(file); err != nil {
				return fmt.Errorf("capture: %w", err)
			}
			defer out.Close()
		}
		stream, err := g.client().Capture(cmd.Context(), req)
		if err != nil {
			if out != nil {
				out.Close()
				os.Remove(file)
			}
			return g.advise(cmd, captureHint(err), req.Network)
		}
		defer stream.Close()
		what := "port " + req.Port
		if req.Port == "" {
			what = "network " + req.Network
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "capturing on %s; Ctrl-C ends\n", what)
		// Ctrl-C asks the daemon to end the capture; it still sends
		// what it has and the counts. A second one leaves at once.
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		go func() {
			if _, ok := <-sigs; !ok {
				return
			}
			_ = stream.Stop()
			if _, ok := <-sigs; ok {
				stream.Close()
			}
		}()
		// A reader of standard output that goes away (| head) ends
		// the capture with its counts, rather than killing tapswitch.
		signal.Ignore(syscall.SIGPIPE)

		var werr error
		switch file {
		case "":
			werr = printSummaries(cmd.OutOrStdout(), stream.Body)
		case "-":
			_, werr = io.Copy(cmd.OutOrStdout(), stream.Body)
		default:
			_, werr = io.Copy(out, stream.Body)
			if err := out.Close(); werr == nil && err != nil {
				werr = err
			}
		}
		outClosed := werr != nil && errors.Is(werr, syscall.EPIPE)
		if werr != nil && !isReadErr(werr) {
			// The output failed: the daemon is told to stop, and the
			// rest of the stream is read for the counts.
			_ = stream.Stop()
			_, _ = io.Copy(io.Discard, stream.Body)
		}
		st, ok := stream.Stats()
		if !ok {
			if werr != nil {
				return fmt.Errorf("capture: %w (no counts from tapswitchd)", werr)
			}
			return errors.New("capture: the stream ended without its counts: tapswitchd stopped or was restarted")
		}
		fmt.Fprintln(cmd.ErrOrStderr(), captureCounts(st))
		if werr != nil && !outClosed {
			return fmt.Errorf("capture: %w", werr)
		}
		return nil
	}
	return cmd
}

// readErr marks an error of reading the stream, as opposed to writing
// the output.
type readErr struct{ error }

func (e readErr) Unwrap() error { return e.error }

func isReadErr(err error) bool {
	var r readErr
	return errors.As(err, &r)
}

// captureHint rewords the errors a capture gets that the generic hints
// do not cover.
func captureHint(err error) error {
	switch api.ReasonOf(err) {
	case api.ReasonBadFilter:
		return &hintError{err: err, hint: "the filter is tcpdump's language: see man 7 pcap-filter, e.g. -f 'tcp port 80 and host 10.0.0.2'"}
	case api.ReasonTooManyCaptures:
		// tapswitchd's message says to end one.
		return err
	}
	return err
}

// captureCounts is the line that ends a capture on standard error.
func captureCounts(st api.CaptureStats) string {
	var why string
	switch st.End {
	case api.CaptureEndCount:
		why = "count reached"
	case api.CaptureEndClient:
		why = "stopped"
	case api.CaptureEndGone:
		why = st.Gone
	case api.CaptureEndStopped:
		why = "tapswitchd is stopping"
	default:
		why = st.End
	}
	// Packets are what was written, a super-frame's segments each one;
	// frames are what the switch forwarded, a super-frame one.
	return fmt.Sprintf("%d packets captured; of %d frames the switch offered, %d lost; %s", st.Packets, st.Frames, st.Lost, why)
}

// printSummaries reads pcapng from r and prints one line per packet, as
// tcpdump does: time, port, direction, and what the packet is.
func printSummaries(w io.Writer, r io.Reader) error {
	ng, err := pcapgo.NewNgReader(r, pcapgo.NgReaderOptions{})
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return readErr{fmt.Errorf("read the capture: %w", err)}
	}
	for {
		data, ci, opts, err := ng.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return readErr{fmt.Errorf("read the capture: %w", err)}
		}
		port := "?"
		if in, err := ng.Interface(ci.InterfaceIndex); err == nil {
			port = in.Name
		}
		dir := "  "
		if opts.Flags != nil {
			switch opts.Flags.Direction {
			case pcapgo.NgEpbFlagDirectionInbound:
				dir = "in"
			case pcapgo.NgEpbFlagDirectionOutbound:
				dir = "out"
			}
		}
		line := fmt.Sprintf("%s %s %-3s %s", ci.Timestamp.Local().Format("15:04:05.000000"), port, dir, summarize(data, ci.Length))
		if len(opts.Comments) > 0 {
			line += " [" + strings.Join(opts.Comments, "; ") + "]"
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
}

// summarize says in a few words what a frame is, tcpdump-like.
func summarize(data []byte, length int) string {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var src, dst, proto string
	switch l := p.NetworkLayer().(type) {
	case *layers.IPv4:
		proto, src, dst = "IP", l.SrcIP.String(), l.DstIP.String()
	case *layers.IPv6:
		proto, src, dst = "IP6", l.SrcIP.String(), l.DstIP.String()
	}
	switch {
	case p.Layer(layers.LayerTypeARP) != nil:
		a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		if a.Operation == layers.ARPRequest {
			return fmt.Sprintf("ARP, Request who-has %s tell %s, length %d", ipString(a.DstProtAddress), ipString(a.SourceProtAddress), length)
		}
		return fmt.Sprintf("ARP, Reply %s is-at %s, length %d", ipString(a.SourceProtAddress), macString(a.SourceHwAddress), length)
	case proto == "":
		if e, ok := p.LinkLayer().(*layers.Ethernet); ok {
			return fmt.Sprintf("%s > %s, ethertype %s (%#04x), length %d", e.SrcMAC, e.DstMAC, e.EthernetType, uint16(e.EthernetType), length)
		}
		return fmt.Sprintf("frame, length %d", length)
	}
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		return fmt.Sprintf("%s %s.%d > %s.%d: Flags [%s], seq %d, ack %d, win %d, length %d", proto, src, l.SrcPort, dst, l.DstPort, tcpFlags(l), l.Seq, l.Ack, l.Window, len(l.Payload))
	case *layers.UDP:
		return fmt.Sprintf("%s %s.%d > %s.%d: UDP, length %d", proto, src, l.SrcPort, dst, l.DstPort, len(l.Payload))
	}
	if l, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		return fmt.Sprintf("%s %s > %s: ICMP %s, id %d, seq %d, length %d", proto, src, dst, l.TypeCode, l.Id, l.Seq, length)
	}
	if l, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		return fmt.Sprintf("%s %s > %s: ICMP6 %s, length %d", proto, src, dst, l.TypeCode, length)
	}
	return fmt.Sprintf("%s %s > %s: length %d", proto, src, dst, length)
}

func tcpFlags(t *layers.TCP) string {
	var b strings.Builder
	for _, f := range []struct {
		on bool
		c  byte
	}{{t.SYN, 'S'}, {t.FIN, 'F'}, {t.RST, 'R'}, {t.PSH, 'P'}, {t.URG, 'U'}, {t.ACK, '.'}} {
		if f.on {
			b.WriteByte(f.c)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func ipString(b []byte) string {
	if len(b) == 4 || len(b) == 16 {
		return net.IP(b).String()
	}
	return fmt.Sprintf("%x", b)
}

func macString(b []byte) string {
	return net.HardwareAddr(b).String()
}
