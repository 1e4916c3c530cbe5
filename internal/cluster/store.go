package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// DefaultPrefix is where the store keeps its keys when Config.Prefix is "".
const DefaultPrefix = "/tapswitch/"

// DefaultTTL is the host lease's TTL when Config.TTL is 0: a host that
// dies leaves the cluster within 10 s, and etcd may be unreachable for
// as long without the host's records going away.
const DefaultTTL = 10 * time.Second

// minTTL is the shortest TTL etcd grants with its default election
// timeout (1 s): it raises shorter ones to this.
const minTTL = 2 * time.Second

// opTimeout bounds every call that needs etcd when the caller's context
// allows longer: with etcd down, a command fails within it rather than
// hang, and says why.
const opTimeout = 3 * time.Second

// retryDelay is the first pause between attempts to reach etcd in the
// background; it doubles up to a third of the TTL.
const retryDelay = 200 * time.Millisecond

// Config says how to reach etcd and who this host is.
type Config struct {
	// Endpoints are etcd client URLs, such as http://10.0.0.10:2379.
	Endpoints []string
	// Host is this host's name, unique in the cluster.
	Host string
	// Advertise is this host's VTEP address.
	Advertise netip.Addr
	// Prefix is the key prefix; "" means DefaultPrefix.
	Prefix string
	// TTL is the host lease's TTL, in whole seconds of at least 2; 0
	// means DefaultTTL.
	TTL time.Duration
	// TLS is the client side of TLS to https endpoints: the CA that
	// signed etcd's certificate (RootCAs, nil for the system's) and this
	// host's client certificate (Certificates), as TLSConfig loads them.
	// nil means the system's CAs and no client certificate.
	TLS *tls.Config
	// Username and Password are this host's etcd user, for an etcd with
	// authentication enabled; both or neither.
	Username string
	Password string
	Logger   *slog.Logger
	// Lease is a lease of this host's to carry on, 0 for none: the one
	// a daemon that hands over to its successor held (Store.Lease). The
	// store keeps it alive in place of granting one, so that the host's
	// records never leave the cluster; if etcd no longer has it, the
	// store registers under a new one as usual.
	Lease int64
	// ConnectedSince goes with Lease: since when the predecessor's store
	// had been connected to etcd (its Status.Since while Connected),
	// zero if it was not. If the store carries the lease on at its first
	// try, with no failure before, its Status.Since starts from there
	// rather than from its own first answer: the store was never away,
	// so a view it reads is as complete as the predecessor's was, and
	// need not wait a TTL to settle (see Status).
	ConnectedSince time.Time
}

// Store is this host's view of, and hand in, the cluster's shared state
// in etcd. Open starts it; it connects, registers the host under a lease
// and follows every change in the background for as long as it is open,
// through etcd outages: see the package documentation.
type Store struct {
	cfg Config
	log *slog.Logger
	cli *clientv3.Client
	// tlsNotes holds the last TLS failure with etcd; nil without TLS.
	tlsNotes *tlsNotes
	k        keys
	// ttl is the lease TTL in seconds.
	ttl int64

	// ctx ends when the store closes; cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed when the background loop has returned.
	done chan struct{}
	// resync asks the background loop for a fresh read of everything and
	// a new watch; leaseLost for a new lease. Both hold one pending request.
	resync    chan struct{}
	leaseLost chan clientv3.LeaseID
	// watchers counts the goroutines calling Watch functions, and the
	// one asking the members (members.go).
	watchers sync.WaitGroup
	// members is the watch of which members answer; nil with one.
	// membersChanged tells the background loop that the members calls
	// go to changed, so that it moves its streams (keepAlive).
	members        *memberWatch
	membersChanged chan struct{}
	// lessor renews the host lease on a stream of its own, made again
	// when the members change; only the background loop uses it.
	lessor clientv3.Lease
	// closeOnce makes Close idempotent; closeErr is its result.
	closeOnce sync.Once
	closeErr  error

	// opMu serialises changes to this host's own records with their
	// re-publication under a new lease, so that neither undoes the other.
	opMu sync.Mutex
	// own are the addresses and endpoints this host published, to put
	// again under a new lease. Guarded by opMu.
	own ownRecords
	// carried is Config.Lease until register has taken it or found it
	// gone; only the background loop uses it.
	carried clientv3.LeaseID
	// carriedSince is Config.ConnectedSince until the store connects
	// (setUp starts Status.Since from it), fails before (setDown), or
	// finds the lease gone (register). Guarded by mu.
	carriedSince time.Time

	mu     sync.Mutex
	status Status
	// lease is the host lease, 0 while there is none.
	lease clientv3.LeaseID
	// leaseReady is closed while lease is not 0.
	leaseReady chan struct{}
	cache      cache
	watchFns   []*watcher
}

// ownRecords are what this host put under its lease.
type ownRecords struct {
	// addrs by key.
	addrs map[string]ownAddr
	// endpoints by key.
	endpoints map[string]Endpoint
}

type ownAddr struct {
	network string
	addr    netip.Addr
	owner   string
}

// Open checks cfg and starts connecting to etcd in the background. It
// never fails because etcd is unreachable (Status says so); only a bad
// Config is an error.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoints; give at least one client URL, such as http://10.0.0.10:2379", ErrInvalid)
	}
	secure := false
	for _, ep := range cfg.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("%w: etcd endpoint %q is not a client URL; give one such as http://10.0.0.10:2379", ErrInvalid, ep)
		}
		secure = secure || u.Scheme == "https"
	}
	if cfg.TLS != nil && !secure {
		return nil, fmt.Errorf("%w: a CA or client certificate is given but the etcd endpoints are http://; use https:// URLs for etcd over TLS", ErrInvalid)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, fmt.Errorf("%w: an etcd user needs both a name and a password", ErrInvalid)
	}
	if err := checkName("host", cfg.Host); err != nil {
		return nil, fmt.Errorf("%w; give this host a name unique in the cluster", err)
	}
	if !cfg.Advertise.IsValid() || cfg.Advertise.IsUnspecified() || cfg.Advertise.Zone() != "" {
		return nil, fmt.Errorf("%w: advertise address %q is not a unicast address of this host; give the address other hosts reach it at", ErrInvalid, cfg.Advertise)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < minTTL || cfg.TTL%time.Second != 0 || cfg.TTL > 24*time.Hour {
		return nil, fmt.Errorf("%w: lease TTL %v; use whole seconds from %v to 24h", ErrInvalid, cfg.TTL, minTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Endpoints = append([]string(nil), cfg.Endpoints...)

	ccfg := clientv3.Config{
		Endpoints: cfg.Endpoints,
		// No DialTimeout: New returns at once and the client connects in
		// the background, so Open never waits for etcd.
		DialKeepAliveTime:    cfg.TTL / 3,
		DialKeepAliveTimeout: cfg.TTL / 3,
		Logger:               zap.NewNop(),
		Context:              context.WithoutCancel(ctx),
		// gRPC's own reconnect backoff grows to 2 minutes by default:
		// after an outage of a few tens of seconds the client would
		// wait seconds more before it tries the etcd that came back.
		// Bounded like the store's own retries.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: retryDelay, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.TTL / 3},
		}), grpc.WithChainUnaryInterceptor(retryElection)},
	}
	if secure {
		ccfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLS != nil {
			ccfg.TLS = cfg.TLS.Clone()
			ccfg.TLS.MinVersion = max(ccfg.TLS.MinVersion, tls.VersionTLS12)
		}
	}
	var notes *tlsNotes
	if ccfg.TLS != nil {
		// Given after the client's own credentials, these replace them.
		notes = &tlsNotes{}
		ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithTransportCredentials(newNotingCreds(ccfg.TLS, notes)))
	}
	if cfg.Username != "" {
		ccfg.Username, ccfg.Password = cfg.Username, cfg.Password
		ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithChainUnaryInterceptor((&lazyAuth{}).intercept))
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("%w: etcd client for %s: %v", ErrInvalid, strings.Join(cfg.Endpoints, ","), err)
	}

	s := &Store{
		cfg:            cfg,
		log:            cfg.Logger.With("etcd", strings.Join(cfg.Endpoints, ",")),
		cli:            cli,
		tlsNotes:       notes,
		k:              keys(cfg.Prefix),
		ttl:            int64(cfg.TTL / time.Second),
		done:           make(chan struct{}),
		resync:         make(chan struct{}, 1),
		leaseLost:      make(chan clientv3.LeaseID, 1),
		membersChanged: make(chan struct{}, 1),
		leaseReady:     make(chan struct{}),
		own:            ownRecords{addrs: map[string]ownAddr{}, endpoints: map[string]Endpoint{}},
		cache:          newCache(),
		carried:        clientv3.LeaseID(cfg.Lease),
	}
	s.status = Status{Since: time.Now(), LastError: "not connected yet", Endpoints: cfg.Endpoints}
	if cfg.Lease != 0 && !cfg.ConnectedSince.IsZero() && cfg.ConnectedSince.Before(s.status.Since) {
		s.carriedSince = cfg.ConnectedSince
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.watchMembers(ccfg.TLS)
	go s.run()
	return s, nil
}

// Close stops following etcd and revokes the host lease: the host, its
// endpoints and its addresses leave the cluster at once. With etcd
// unreachable they leave when the lease expires.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	lease := s.stop()
	var err error
	if lease != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		if _, rerr := s.cli.Revoke(ctx, lease); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			err = fmt.Errorf("cluster: revoke the lease of host %s (it leaves within %v instead): %w", s.cfg.Host, s.cfg.TTL, rerr)
		}
		cancel()
	}
	if cerr := s.cli.Close(); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	return err
}

// Detach stops following etcd like Close but keeps the host lease: the
// host, its endpoints and its addresses stay in the cluster until the
// lease expires, TTL later. A daemon that stops to start again detaches,
// so that the other hosts keep sending to its ports, which stay, and the
// next start takes its records back under a lease of its own. It is
// also how the store stops when its process dies.
func (s *Store) Detach() {
	s.closeOnce.Do(func() {
		s.stop()
		_ = s.cli.Close()
	})
}

// stop ends the background work and the watchers, and returns the lease.
func (s *Store) stop() clientv3.LeaseID {
	s.cancel()
	<-s.done
	s.watchers.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	lease := s.lease
	s.lease = 0
	s.status.Connected = false
	s.status.LastError = "closed"
	return lease
}

// Status reports the connection to etcd.
func (s *Store) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Endpoints = append([]string(nil), st.Endpoints...)
	st.Avoided = s.avoidedMembersLocked()
	return st
}

// setUp records that etcd answered.
func (s *Store) setUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tlsNotes.clear()
	if !s.status.Connected {
		s.status.Connected = true
		s.status.Since = time.Now()
		s.status.LastError = ""
		if !s.carriedSince.IsZero() {
			// The predecessor's connection, carried on with its lease.
			s.status.Since = s.carriedSince
			s.log.Info("cluster store connected, carrying on the predecessor's session", "host", s.cfg.Host, "connected_since", s.status.Since)
		} else {
			s.log.Info("cluster store connected", "host", s.cfg.Host)
		}
	}
	s.carriedSince = time.Time{}
}

// setDown records that etcd did not answer.
func (s *Store) setDown(err error) {
	if s.ctx.Err() != nil {
		return
	}
	err = s.explain(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	// A failure before the first connection: the store was away after
	// all, and its views must settle as after any (re)connection.
	s.carriedSince = time.Time{}
	s.status.LastError = err.Error()
	if s.status.Connected {
		s.status.Connected = false
		s.status.Since = time.Now()
		s.log.Warn("cluster store disconnected; local networks and existing traffic are unaffected", "err", err)
	}
}

// run connects, registers, follows the store and keeps the lease alive
// until the store closes.
func (s *Store) run() {
	defer close(s.done)
	var w *watchLoop
	defer func() {
		if w != nil {
			w.stop()
		}
		s.dropLessor()
	}()
	delay := retryDelay
	pause := func() bool {
		t := time.NewTimer(delay)
		defer t.Stop()
		delay = min(2*delay, s.cfg.TTL/3)
		select {
		case <-s.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	// verify asks for the lease to be checked before anything else: after
	// an outage etcd may have let it expire.
	verify := false
	for s.ctx.Err() == nil {
		if lease := s.currentLease(); verify && lease != 0 {
			if !s.checkLease(lease) {
				return
			}
		}
		verify = false
		if s.currentLease() == 0 {
			if err := s.register(); err != nil {
				s.setDown(err)
				if !pause() {
					return
				}
				continue
			}
		}
		if w == nil {
			var err error
			if w, err = s.startWatch(); err != nil {
				s.setDown(fmt.Errorf("read the store: %w", err))
				verify = true
				if !pause() {
					return
				}
				continue
			}
		}
		s.setUp()
		delay = retryDelay
		var more bool
		if more, verify = s.keepAlive(&w); !more {
			return
		}
	}
}

// keepAlive renews the lease on one long-lived stream until the lease is
// lost, a resync is asked for or the store closes (more false). After an
// outage it has the watch restarted from a fresh read, and the lease
// checked first (verify).
//
// A stream rather than a call per renewal: an etcd that is shutting down
// refuses new streams for seconds while its leases still count down; the
// open stream may keep working through that.
func (s *Store) keepAlive(w **watchLoop) (more, verify bool) {
	lease := s.currentLease()
	kctx, kcancel := context.WithCancel(s.ctx)
	defer kcancel()
	if s.lessor == nil {
		s.lessor = clientv3.NewLease(s.cli)
	}
	ka, err := s.lessor.KeepAlive(kctx, lease)
	if err != nil {
		s.setDown(fmt.Errorf("renew the host lease: %w", err))
		return s.sleep(time.Second), true
	}
	// The client renews a third of the TTL after the last renewal, on a
	// half-second tick; another third (at least a second) without one
	// means etcd is not answering.
	quiet := s.cfg.TTL/3 + max(s.cfg.TTL/3, time.Second)
	silence := time.NewTimer(quiet)
	defer silence.Stop()
	down := false
	restart := func() (bool, bool) {
		(*w).stop()
		*w = nil
		return true, true
	}
	for {
		select {
		case <-s.ctx.Done():
			return false, false
		case <-s.resync:
			return restart()
		case <-s.membersChanged:
			// The streams may be on a member left out, which a closed
			// connection would have moved but a silent one does not:
			// the renewals and the watch start afresh on the others.
			s.dropLessor()
			return restart()
		case id := <-s.leaseLost:
			if id == lease && s.leaseGone(id) {
				s.dropLease(fmt.Errorf("lease %x not found", int64(id)))
				return true, false
			}
		case _, ok := <-ka:
			if !ok {
				// The client gave the lease up: no renewal for a whole
				// TTL, or etcd said it is gone. etcd extends every lease
				// when it restarts, so the lease may live: ask.
				return restart()
			}
			silence.Reset(quiet)
			if down {
				// Back after an outage: the watch may have been cut or
				// missed a compaction; read everything again.
				return restart()
			}
		case <-silence.C:
			down = true
			s.setDown(fmt.Errorf("renew the host lease: no answer from etcd for %v", quiet))
		}
	}
}

// dropLessor ends the lease's renewal stream, for the next keepAlive to
// open another.
func (s *Store) dropLessor() {
	if s.lessor != nil {
		s.lessor.Close()
		s.lessor = nil
	}
}

// checkLease asks etcd, until it answers or the store closes (false),
// whether lease still exists; if not, it is dropped.
func (s *Store) checkLease(lease clientv3.LeaseID) bool {
	for {
		ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(s.ctx), opTimeout)
		_, err := s.cli.KeepAliveOnce(ctx, lease)
		cancel()
		switch {
		case err == nil:
			return true
		case errors.Is(err, rpctypes.ErrLeaseNotFound) && s.leaseGone(lease):
			s.dropLease(err)
			return true
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			// A member that led before a pause or a partition may say
			// so of a lease the cluster keeps: ask again.
			if !s.sleep(retryDelay) {
				return false
			}
			continue
		case s.ctx.Err() != nil:
			return false
		}
		s.setDown(fmt.Errorf("renew the host lease: %w", err))
		if !s.sleep(time.Second) {
			return false
		}
	}
}

// sleep waits for d or until the store closes (false).
func (s *Store) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// currentLease returns the host lease, 0 if there is none.
func (s *Store) currentLease() clientv3.LeaseID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease
}

// dropLease forgets a lease etcd no longer has: it expired while this
// host could not reach etcd, or someone revoked it.
func (s *Store) dropLease(why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease == 0 {
		return
	}
	s.log.Warn("cluster host lease lost; registering again and publishing this host's endpoints and addresses anew", "host", s.cfg.Host, "lease", fmt.Sprintf("%x", int64(s.lease)), "err", why)
	s.lease = 0
	s.leaseReady = make(chan struct{})
}

// leaseGone confirms that etcd no longer has lease id, which a member
// said: the host's record, read linearizably, is not under it. A member
// that led before it hung or was cut off, and has not yet learnt that
// another leads, answers a renewal from its own stale lease table, where
// every lease has run out while it was away; a linearizable read needs a
// majority's word, which it no longer has. Without an answer, the lease
// is not taken for gone.
func (s *Store) leaseGone(id clientv3.LeaseID) bool {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(s.ctx), opTimeout)
	defer cancel()
	r, err := s.cli.Get(ctx, s.k.host(s.cfg.Host))
	if err != nil {
		return false
	}
	gone := len(r.Kvs) != 1 || clientv3.LeaseID(r.Kvs[0].Lease) != id
	if !gone {
		s.log.Info("a member said the host lease is gone; the cluster still has it", "host", s.cfg.Host, "lease", fmt.Sprintf("%x", int64(id)))
	}
	return gone
}

// lostLease tells the background loop that an operation found the lease
// gone.
func (s *Store) lostLease(id clientv3.LeaseID) {
	select {
	case s.leaseLost <- id:
	default:
	}
}

// Lease returns the host lease, 0 while there is none: for a successor
// to carry on (Config.Lease).
func (s *Store) Lease() int64 { return int64(s.currentLease()) }

// register grants a lease, puts the host under it and publishes this
// host's addresses and endpoints under it again; or carries on the lease
// of Config.Lease, if etcd still has it.
func (s *Store) register() error {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(s.ctx), max(opTimeout, s.cfg.TTL))
	defer cancel()
	if s.carried != 0 {
		ok, err := s.carryOn(ctx, s.carried)
		if err != nil {
			return err
		}
		s.carried = 0
		if ok {
			return nil
		}
		// Registered anew: the predecessor's connection is not carried on.
		s.mu.Lock()
		s.carriedSince = time.Time{}
		s.mu.Unlock()
	}
	g, err := s.cli.Grant(ctx, s.ttl)
	if err != nil {
		return fmt.Errorf("grant a lease: %w", err)
	}
	h := Host{Name: s.cfg.Host, VTEP: s.cfg.Advertise, Since: time.Now()}
	if _, err := s.cli.Put(ctx, s.k.host(s.cfg.Host), string(encodeHost(h)), clientv3.WithLease(g.ID)); err != nil {
		s.revokeQuietly(g.ID)
		return fmt.Errorf("register host %s: %w", s.cfg.Host, err)
	}
	s.opMu.Lock()
	err = s.republish(ctx, g.ID)
	s.opMu.Unlock()
	if err != nil {
		s.revokeQuietly(g.ID)
		return err
	}
	s.mu.Lock()
	s.lease = g.ID
	close(s.leaseReady)
	s.mu.Unlock()
	s.log.Info("cluster host registered", "host", s.cfg.Host, "vtep", s.cfg.Advertise, "lease", fmt.Sprintf("%x", int64(g.ID)), "ttl", s.cfg.TTL)
	return nil
}

// carryOn takes id, a lease of this host's handed over, as the host
// lease if etcd still has it (ok): renewed at once, the host record put
// again under it only if it is missing or under another lease, so that
// the other hosts see no change. A lease etcd no longer has is not an
// error: ok is false, and the host registers anew.
func (s *Store) carryOn(ctx context.Context, id clientv3.LeaseID) (ok bool, err error) {
	if _, err := s.cli.KeepAliveOnce(ctx, id); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.log.Warn("cluster host lease handed over is gone; registering anew", "host", s.cfg.Host, "lease", fmt.Sprintf("%x", int64(id)))
			return false, nil
		}
		return false, fmt.Errorf("renew the host lease handed over: %w", err)
	}
	key := s.k.host(s.cfg.Host)
	r, err := s.cli.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("read host %s: %w", s.cfg.Host, err)
	}
	keep := false
	if len(r.Kvs) == 1 && clientv3.LeaseID(r.Kvs[0].Lease) == id {
		h, derr := decodeHost(s.cfg.Host, r.Kvs[0].Value)
		keep = derr == nil && h.VTEP == s.cfg.Advertise
	}
	if !keep {
		h := Host{Name: s.cfg.Host, VTEP: s.cfg.Advertise, Since: time.Now()}
		if _, err := s.cli.Put(ctx, key, string(encodeHost(h)), clientv3.WithLease(id)); err != nil {
			return false, fmt.Errorf("register host %s: %w", s.cfg.Host, err)
		}
	}
	s.opMu.Lock()
	err = s.republish(ctx, id)
	s.opMu.Unlock()
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.lease = id
	close(s.leaseReady)
	s.mu.Unlock()
	s.log.Info("cluster host registered under the lease handed over", "host", s.cfg.Host, "vtep", s.cfg.Advertise, "lease", fmt.Sprintf("%x", int64(id)), "host_record_kept", keep)
	return true, nil
}

// republish puts this host's addresses and endpoints under lease. A
// record someone else took meanwhile, or whose network is gone, is
// dropped and logged. opMu held.
func (s *Store) republish(ctx context.Context, lease clientv3.LeaseID) error {
	for key, a := range s.own.addrs {
		rec := addrRecord{Owner: a.owner, Host: s.cfg.Host}
		err := s.putOwned(ctx, a.network, key, encodeAddr(rec), lease, s.sameAddrHolder(a.network, a.addr, a.owner))
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				return err
			}
			s.log.Warn("cluster address not published again; it is no longer this host's", "network", a.network, "addr", a.addr, "owner", a.owner, "err", err)
			delete(s.own.addrs, key)
		}
	}
	for key, e := range s.own.endpoints {
		err := s.putOwned(ctx, e.Network, key, encodeEndpoint(e), lease, s.sameEndpointHost(e.Network, e.Name))
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				return err
			}
			s.log.Warn("cluster endpoint not published again", "network", e.Network, "endpoint", e.Name, "err", err)
			delete(s.own.endpoints, key)
		}
	}
	return nil
}

func (s *Store) revokeQuietly(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	defer cancel()
	_, _ = s.cli.Revoke(ctx, id)
}

// leaseFor waits for the host lease until ctx ends.
func (s *Store) leaseFor(ctx context.Context) (clientv3.LeaseID, error) {
	for {
		s.mu.Lock()
		id, ready := s.lease, s.leaseReady
		s.mu.Unlock()
		if id != 0 {
			return id, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return 0, s.unavailable(errors.New("this host is not registered in the cluster yet"))
		case <-s.ctx.Done():
			return 0, errClosed
		}
	}
}

var errClosed = fmt.Errorf("%w: the cluster store is closed", ErrUnavailable)

// opCtx bounds an operation by opTimeout.
// A closed store's operations fail at once. A member of etcd without a
// leader refuses them at once (rather than hold them until the
// timeout), so that they are made again through another member.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), opTimeout)
	if s.ctx.Err() != nil {
		cancel()
	}
	return ctx, cancel
}

// unavailable wraps an error talking to etcd in ErrUnavailable, saying
// what it means and what to do.
func (s *Store) unavailable(err error) error {
	if s.ctx.Err() != nil {
		return errClosed
	}
	if noLeader(err) {
		return fmt.Errorf("%w: etcd at %s has no leader (%v): %s; cluster networks, addresses and endpoints cannot change until they do, while local networks and existing traffic are unaffected; check etcd's members (etcdctl endpoint status --cluster)", ErrUnavailable, strings.Join(s.cfg.Endpoints, ","), err, noLeaderAdvice)
	}
	err = s.explain(err)
	if a := advice(err, s.cfg.Prefix); a != "" {
		return fmt.Errorf("%w: etcd at %s refused this host (%v); cluster networks, addresses and endpoints cannot change until it takes it, while local networks and existing traffic are unaffected", ErrUnavailable, strings.Join(s.cfg.Endpoints, ","), err)
	}
	return fmt.Errorf("%w: etcd at %s did not answer (%v); cluster networks, addresses and endpoints cannot change until it does, while local networks and existing traffic are unaffected; check that etcd runs and is reachable from this host", ErrUnavailable, strings.Join(s.cfg.Endpoints, ","), err)
}

// explain adds to an error talking to etcd the TLS failure behind it, if
// one is noted, and what to check for a failure of TLS or
// authentication.
func (s *Store) explain(err error) error {
	if noLeader(err) {
		return fmt.Errorf("%w; etcd has no leader: %s", err, noLeaderAdvice)
	}
	if a := advice(err, s.cfg.Prefix); a != "" {
		return fmt.Errorf("%w; %s", err, a)
	}
	if t := s.tlsNotes.last(); t != nil {
		return fmt.Errorf("%w: %v; %s", err, t, advice(t, s.cfg.Prefix))
	}
	return err
}

// etcdErr turns an error from the client into the store's, noticing a
// lost lease on the way.
func (s *Store) etcdErr(lease clientv3.LeaseID, err error) error {
	if lease != 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.lostLease(lease)
	}
	return s.unavailable(err)
}
