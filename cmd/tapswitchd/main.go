// Command tapswitchd is the tapswitch daemon: it owns a TAP device in every
// attached network namespace and switches Ethernet frames between them.
// It serves the tapswitch API on a Unix socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/internal/fdset"
	"github.com/tapswitch/tapswitch/internal/metrics"
	"github.com/tapswitch/tapswitch/internal/sdnotify"
	"github.com/tapswitch/tapswitch/internal/version"
	"github.com/tapswitch/tapswitch/tap"
)

type options struct {
	socket string
	// group may use the socket besides root; empty for root only.
	group     string
	stateDir  string
	logLevel  string
	fdbAgeing time.Duration
	fdbLimit  int
	queues    int
	// dnsUpstreams override the nameservers of /etc/resolv.conf.
	dnsUpstreams []string
	// ipv6Pool is --ipv6-pool as given, pool6 as parsed by run.
	ipv6Pool string
	pool6    netip.Prefix
	// removeOnExit undoes everything at exit instead of keeping it for
	// the next start.
	removeOnExit bool
	// upgrade takes over from the daemon running with the same state
	// directory (see handover.go).
	upgrade bool
	// started is when main began, the origin of the times the status
	// reports.
	started time.Time
	// limits bound what outsiders can make the daemon hold (limits.go).
	limits limitOptions
	// dataplane is --batch, --coalesce and --busy-poll (dataplane.go).
	dataplane dataplaneOptions
	// tap says how TAPs are made (tapflags.go).
	tap tapOptions
	// metrics is where to serve Prometheus metrics; empty for nowhere.
	metrics string
	// docker serves the Docker network and IPAM driver on the plugin
	// socket of dockerPlugin (docker.go).
	docker       bool
	dockerPlugin string
	// dockerPluginSet: --docker-plugin was given.
	dockerPluginSet bool
	// dockerHost is dockerd's API, which --docker asks for names and
	// re-syncs with (docker_sync.go).
	dockerHost string
	// cluster are the flags of networks that span hosts (cluster.go),
	// overlay what run makes of them.
	cluster clusterOptions
	overlay daemon.OverlayConfig
}

func main() {
	o := options{started: time.Now()}
	cmd := &cobra.Command{
		Use:   "tapswitchd",
		Short: "Userspace Ethernet switch for Linux network namespaces",
		Long: `tapswitchd switches Ethernet frames between TAP devices it creates inside
network namespaces, in place of a kernel bridge. It must run as root.
Drive it with the tapswitch command.

Its TAPs are persistent: stopped with SIGINT or SIGTERM, or killed, the
daemon leaves every port's TAP in its namespace with its addresses, the
gateway interfaces and the nftables table, and the next tapswitchd with
the same state directory takes them all back, so that connections through
the switch only see a short loss (tapswitch status shows how short). A
namespace attached by pid or path is pinned under the state directory
until its port is detached, or until no process and no other mount holds
the namespace any more: a namespace that vanishes takes its port with it.
With --remove-on-exit, stopping removes all of it instead.

To restart without losing a frame, start the new tapswitchd with the same
flags and --upgrade: the running one hands over its TAPs' queues and its
sockets, and exits once the new one forwards; frames sent meanwhile wait
in the TAPs' rings. A cluster host hands over its VXLAN receiving sockets too,
whose datagrams wait in them, and its lease in the cluster's etcd, so that the
other hosts never see it leave. Under a service manager that keeps file
descriptors (systemd's Type=notify with FileDescriptorStoreMax=, see
contrib/tapswitchd.service), tapswitchd stores them there, so that a
restart or even a crash loses nothing either.

Every network has a gateway interface in the daemon's namespace, named
tsw- and 8 hex digits derived from the state directory and the network,
with a DNS server on port 53 that answers for the network's ports and
forwards other names to the host's resolvers (those of /etc/resolv.conf,
or --dns-upstream). Networks and their addresses are kept in the state
directory and come back at the next start.

Networks of scope cluster (tapswitch network create --scope cluster) span
hosts: their frames cross in VXLAN from --advertise, this host's address
on the underlay, to the hosts of the cluster's etcd (--cluster
etcd=URL, where the networks, their addresses and every port are kept,
so that a network made on one host exists on all) and to the static
--vxlan-peer hosts (another tapswitchd, or a Linux vxlan device). An etcd
served over TLS takes --cluster-ca, --cluster-cert and --cluster-key, and
one with users --cluster-user and --cluster-password-file. VXLAN is not
encrypted: across an untrusted network, advertise the address of a
WireGuard or IPsec interface.`,
		Version:       version.String(),
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.dockerPluginSet = cmd.Flags().Changed("docker-plugin")
			return run(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.socket, "socket", api.DefaultSocket, "Unix socket to serve the API on")
	f.StringVar(&o.group, "group", "", "let the members of `GROUP` (a name or GID) use the API socket besides root: the socket becomes root:GROUP, mode 0660 (default: root only, mode 0600)")
	f.StringVar(&o.stateDir, "state-dir", daemon.DefaultStateDir, "directory for the daemon's state; it also names the daemon's gateway interfaces and nftables table")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&o.fdbAgeing, "fdb-ageing", fdb.DefaultAgeingTime, "forget a MAC address not seen for this long")
	f.IntVar(&o.fdbLimit, "fdb-limit", fdb.DefaultLimit, "most MAC addresses learned per network")
	f.IntVar(&o.queues, "queues", daemon.DefaultQueues(), "queues per TAP, each read by its own loop (1 to 16)")
	f.BoolVar(&o.removeOnExit, "remove-on-exit", false, "on SIGINT or SIGTERM, detach every port and remove the gateway interfaces, pins and nftables table, instead of keeping them for the next start")
	f.BoolVar(&o.upgrade, "upgrade", false, "take over from the tapswitchd running with the same --state-dir, without losing a frame: it hands over its TAPs' queues and its sockets, and exits once this one forwards (give the other flags as it has them); with none running, start as usual")
	f.StringArrayVar(&o.dnsUpstreams, "dns-upstream", nil, "resolver `ADDR` (IP or IP:PORT) the networks' DNS servers forward other names to, instead of the nameservers of /etc/resolv.conf (repeatable)")
	f.StringVar(&o.ipv6Pool, "ipv6-pool", "", "IPv6 `PREFIX` (/48 or so) whose free /64s networks get when they ask for an IPv6 subnet from the pool (network create --ipv6); default fd89:7473:7700::/48")
	addLimitFlags(f, &o.limits)
	addDataplaneFlags(f, &o.dataplane)
	addTAPFlags(f, &o.tap)
	f.StringVar(&o.metrics, "metrics", "", metricsFlagHelp)
	f.BoolVar(&o.docker, "docker", false, "also serve the Docker network and IPAM driver on /run/docker/plugins/NAME.sock (root only): docker network create -d NAME, --ipam-driver NAME")
	f.StringVar(&o.dockerPlugin, "docker-plugin", defaultPluginName, "the driver's `NAME` for --docker, as docker network create -d NAME gives it")
	f.StringVar(&o.dockerHost, "docker-host", "", dockerHostHelp)
	addClusterFlags(f, &o.cluster)
	addGenCommands(cmd, os.Args[1:])
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "tapswitchd: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	if o.fdbAgeing < time.Second {
		return fmt.Errorf("--fdb-ageing %s: must be at least 1s", o.fdbAgeing)
	}
	if o.queues < 1 || o.queues > tap.MaxQueues {
		return fmt.Errorf("--queues %d: must be 1 to %d", o.queues, tap.MaxQueues)
	}
	if _, err := o.dataplane.config(); err != nil {
		return err
	}
	if o.fdbLimit < 1 {
		return fmt.Errorf("--fdb-limit %d: must be at least 1", o.fdbLimit)
	}
	if o.upgrade && o.stateDir == "" {
		return errors.New("--upgrade needs the --state-dir of the running tapswitchd: the hand-over socket is there")
	}
	if err := checkDockerFlags(o); err != nil {
		return err
	}
	upstreams, err := parseUpstreams(o.dnsUpstreams)
	if err != nil {
		return err
	}
	if o.ipv6Pool != "" {
		if o.pool6, err = netip.ParsePrefix(o.ipv6Pool); err != nil || !o.pool6.Addr().Is6() || o.pool6.Bits() > 63 {
			return fmt.Errorf("--ipv6-pool %q: want an IPv6 prefix of /63 or shorter, such as fd89:7473:7700::/48", o.ipv6Pool)
		}
	}
	// Absolute, so that the listeners handed to a successor name
	// their sockets as its flags do, whatever its working directory.
	if o.socket, err = filepath.Abs(o.socket); err != nil {
		return fmt.Errorf("--socket: %w", err)
	}
	if o.stateDir != "" {
		if o.stateDir, err = filepath.Abs(o.stateDir); err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
	}
	access, err := socketAccess(o.group)
	if err != nil {
		return err
	}
	if err := o.tap.check(); err != nil {
		return err
	}
	if err := o.limits.check(); err != nil {
		return err
	}
	if _, err := o.cluster.config(nil); err != nil {
		return err
	}
	var metricsAddr netip.AddrPort
	if o.metrics != "" {
		if metricsAddr, err = metrics.ParseAddr(o.metrics); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it creates TAP devices inside other network namespaces")
	}
	if o.cluster.advertise != "" {
		local, err := localAddrs()
		if err != nil {
			return err
		}
		if o.overlay, err = o.cluster.config(local); err != nil {
			return err
		}
	}

	// Caught from before the socket exists: a signal that arrives while
	// the state is restored stops the daemon once it is, the proper way.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := o.limits.apply(log); err != nil {
		return err
	}

	// What outlived the previous daemon: descriptors the service
	// manager kept, or those the running daemon hands over.
	notifier, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("no notifications to the service manager", "err", err)
	}
	inherited, err := sdnotify.Listen()
	if err != nil {
		log.Warn("descriptors from the service manager not taken; the TAPs are opened by name", "err", err)
	}
	var pred *daemon.Predecessor
	if o.upgrade {
		start := time.Now()
		p, set, err := daemon.TakeOver(o.stateDir)
		switch {
		case err == nil:
			pred = p
			log.Info("taking over", "from_pid", p.Pid, "descriptors", set.Len(), "received_in", time.Since(start))
		case errors.Is(err, daemon.ErrNoPredecessor):
			if c, derr := net.DialTimeout("unix", o.socket, time.Second); derr == nil {
				c.Close()
				inherited.Close()
				return fmt.Errorf("the tapswitchd serving %s offers no hand-over on %s: it predates --upgrade or runs with another --state-dir; stop it and start this one instead", o.socket, daemon.HandoverSocket(o.stateDir))
			}
			log.Warn("nothing to take over from; starting as usual", "err", err)
		case errors.Is(err, daemon.ErrPredecessorGone):
			log.Warn("starting as after a crash, with the descriptors received", "err", err)
		default:
			inherited.Close()
			return err
		}
		if set != nil {
			inherited.Close()
			inherited = set
		}
	}
	s := &server{o: o, access: access, log: log, notifier: notifier}
	ok := false
	defer func() {
		if !ok {
			if pred != nil {
				pred.Abort(err)
			}
			inherited.Close()
		}
	}()
	if s.ln, err = apiListener(o.socket, access, inherited, log); err != nil {
		return err
	}
	if o.stateDir != "" {
		if s.hln, err = handoverListener(o.stateDir, inherited, log); err != nil {
			s.ln.Close()
			return err
		}
	}
	if o.metrics != "" {
		if err = s.openMetrics(metricsAddr, inherited); err != nil {
			s.ln.Close()
			return err
		}
	}
	if err = s.openPlugin(inherited); err != nil {
		s.ln.Close()
		return err
	}
	s.d, err = daemon.New(s.daemonConfig(upstreams, inherited))
	if err != nil {
		s.ln.Close()
		s.closePluginListener()
		return err
	}
	ok = true
	s.serve()
	s.serveMetrics()
	s.servePlugin()
	if pred != nil {
		if err := pred.Done(); err != nil {
			log.Warn("could not tell the previous tapswitchd it was taken over from; it resumes after its time-out unless it has exited", "pid", pred.Pid, "err", err)
		}
		log.Info("took over", "from_pid", pred.Pid, "since_start", time.Since(o.started))
	}
	s.notifyReady()
	log.Info("tapswitchd started", "version", version.String(), "socket", o.socket, "access", access, "pid", os.Getpid())
	return s.loop(ctx, upstreams)
}

// server is the running daemon with its API server.
type server struct {
	o        options
	access   apiserver.Access
	log      *slog.Logger
	notifier *sdnotify.Notifier
	d        *daemon.Daemon
	// ln is the API listener, hln the hand-over listener (nil without
	// a state directory).
	ln   net.Listener
	hln  *net.UnixListener
	srv  *http.Server
	errc chan error
	// lim is ln as srv accepts from it, conns srv's connections (for a
	// hand-over: quiesceAPI).
	lim   *limitListener
	conns *apiConns
	// apiStored: the service manager keeps a copy of ln.
	apiStored bool
	// metrics, served by msrv on mln, are nil without --metrics.
	metrics *metrics.Metrics
	mln     *net.TCPListener
	msrv    *http.Server
	// pln is the Docker plugin listener on pluginPath, served by psrv;
	// nil without --docker.
	pln        *net.UnixListener
	pluginPath string
	psrv       *http.Server
}

func (s *server) daemonConfig(upstreams []netip.AddrPort, inherited *fdset.Set) daemon.Config {
	cfg := daemon.Config{
		StateDir:     s.o.stateDir,
		FDB:          fdb.Config{Limit: s.o.fdbLimit, AgeingTime: s.o.fdbAgeing},
		Queues:       s.o.queues,
		DNSUpstreams: upstreams,
		IPv6Pool:     s.o.pool6,
		Logger:       s.log,
		Started:      s.o.started,
		Inherited:    inherited,
		TAP:          s.o.tap.config(),
		Overlay:      s.o.overlay,
	}
	// Checked by run.
	cfg.Dataplane, _ = s.o.dataplane.config()
	if s.notifier != nil {
		cfg.FDStore = s.notifier
	}
	if s.metrics != nil {
		cfg.Timings = s.metrics
	}
	return cfg
}

// serve starts the API server on s.ln.
func (s *server) serve() {
	s.conns = newAPIConns()
	s.srv = apiServer(s.conns.handler(s.access.Guard(apiserver.NewHandler(s.d, s.log), s.log)), s.log)
	s.srv.ConnState = s.conns.track
	s.srv.ConnContext = s.conns.connContext
	s.srv.RegisterOnShutdown(s.d.EndCaptures)
	s.errc = make(chan error, 1)
	s.lim = limitConns(s.ln, apiMaxConns, apiMaxConnsPerUser, s.log)
	srv, ln, errc := s.srv, s.lim, s.errc
	go func() { errc <- srv.Serve(ln) }()
}

// loop runs until a signal, a failure of the API server or a hand-over
// ends it.
func (s *server) loop(ctx context.Context, upstreams []netip.AddrPort) error {
	successors := make(chan *daemon.Successor)
	next := make(chan struct{})
	if s.hln != nil {
		go acceptSuccessors(s.hln, successors, next, s.log)
	}
	var err error
	for {
		select {
		case <-ctx.Done():
			s.log.Info("shutting down")
		case err = <-s.errc:
			s.log.Error("API server failed", "err", err)
		case succ := <-successors:
			done, herr := s.handOver(succ, upstreams)
			if herr != nil {
				return herr
			}
			if done {
				return nil
			}
			next <- struct{}{}
			continue
		}
		break
	}
	s.notifier.Stopping()
	s.stopPlugin(true)
	// Event streams last; they end now, or the API's stop would wait.
	s.d.Stopping(s.o.removeOnExit)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	s.stopMetrics()
	if s.hln != nil {
		s.hln.Close()
		os.Remove(daemon.HandoverSocket(s.o.stateDir))
	}
	if s.o.removeOnExit {
		s.d.ForgetStored()
		if s.apiStored {
			s.notifier.Remove(apiFDName)
		}
		s.d.CloseAndRemove()
		os.Remove(s.o.socket)
		s.log.Info("tapswitchd stopped; its ports, gateways and firewall table are removed")
	} else {
		s.d.Close()
		if !s.apiStored {
			// The service manager keeps the listener for the next
			// start otherwise, and clients queue on it meanwhile.
			os.Remove(s.o.socket)
		}
		s.log.Info("tapswitchd stopped; its ports, gateways and firewall table stay for the next start", "state_dir", s.o.stateDir)
	}
	return err
}

// parseUpstreams reads the --dns-upstream values: an IP address, on port
// 53, or IP:PORT ([IPv6]:PORT). None gives nil, which means the
// nameservers of /etc/resolv.conf.
func parseUpstreams(in []string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, s := range in {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
			continue
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Port() == 0 {
			return nil, fmt.Errorf("--dns-upstream %q: want an IP address, or IP:PORT such as 127.0.0.53:53 or [::1]:53", s)
		}
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return out, nil
}

// clearSocket readies path for a socket: its directory is made 0755 if
// missing, whatever the umask (others must reach the socket; its own mode
// guards it), and a socket file left by a process that died is removed.
// One a live process answers on is refused with busy. what names the
// socket in errors.
func clearSocket(path, what, busy string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s directory: %w", what, err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("%s directory: %w", what, err)
		}
	} else if err != nil {
		return fmt.Errorf("%s directory: %w", what, err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return errors.New(busy)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale %s: %w", what, err)
		}
	}
	return nil
}

// listen opens the API socket: root's with mode 0600, or with a group in
// access root:GROUP with mode 0660. A socket file left by a daemon that
// died is replaced; one a live daemon answers on is not. A missing socket
// directory is made 0755, whatever the umask, so that the group can reach
// the socket; the socket's mode is what guards it.
func listen(path string, access apiserver.Access) (net.Listener, error) {
	if err := clearSocket(path, "socket", fmt.Sprintf("another tapswitchd is already serving %s; stop it first or use --socket", path)); err != nil {
		return nil, err
	}
	// The umask makes the socket 0600 from the start, so there is no
	// window in which others could connect; nothing else runs yet.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("listen on %s: in use", path)
		}
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if access.GID >= 0 {
		// Only root could connect so far; the group gets in once the
		// socket is the group's and open to it.
		err := os.Chown(path, -1, access.GID)
		if err == nil {
			err = os.Chmod(path, 0o660)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("open socket %s to %s: %w", path, access, err)
		}
		warnUnreachable(filepath.Dir(path), access)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, nil
}
