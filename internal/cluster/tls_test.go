package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// openWith opens a store for host h1 on srv under the test's own prefix,
// with Config changed by edit; it is closed when the test ends.
func openWith(t *testing.T, srv *etcdtest.Server, edit func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Endpoints: []string{srv.URL()},
		Host:      "h1",
		Advertise: netip.MustParseAddr("10.0.0.1"),
		Prefix:    "/tsc/" + t.Name() + "/",
		TTL:       testTTL,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	edit(&cfg)
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v (Open must not fail on a store it cannot use)", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// works waits until s is connected and a network can be made.
func works(t *testing.T, s *Store) {
	t.Helper()
	waitFor(t, "store connected", func() bool { return s.Status().Connected })
	mustCreate(t, s, Network{Name: "front"})
}

// refused waits until s's status gives an error that contains every one
// of want, and checks that a change fails with ErrUnavailable saying the
// same.
func refused(t *testing.T, s *Store, want ...string) {
	t.Helper()
	has := func(msg string) bool {
		for _, w := range want {
			if !strings.Contains(msg, w) {
				return false
			}
		}
		return true
	}
	var st Status
	waitFor(t, "status error containing "+strings.Join(want, ", "), func() bool { st = s.Status(); return has(st.LastError) })
	if st.Connected {
		t.Fatalf("Status() = %+v, want not connected", st)
	}
	t.Logf("status: %s", st.LastError)
	_, err := s.CreateNetwork(context.Background(), Network{Name: "front"})
	if !errors.Is(err, ErrUnavailable) || !has(err.Error()) {
		t.Fatalf("CreateNetwork = %v, want ErrUnavailable containing %q", err, want)
	}
}

// TestTLS reaches an etcd that wants client certificates: with its CA and
// a client certificate it works; with another CA, or no client
// certificate, Open still succeeds and the status says what to check.
func TestTLS(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{TLS: true})
	certs := srv.Certs()
	other := etcdtest.NewCerts(t, t.TempDir(), netip.MustParseAddr("127.0.0.1"), "stranger")
	t.Run("right CA and client certificate", func(t *testing.T) {
		cfg, err := TLSConfig(certs.CA, certs.Cert, certs.Key)
		if err != nil {
			t.Fatalf("TLSConfig: %v", err)
		}
		works(t, openWith(t, srv, func(c *Config) { c.TLS = cfg }))
	})
	t.Run("another CA", func(t *testing.T) {
		s := openWith(t, srv, func(c *Config) { c.TLS = certs.TLS(t); c.TLS.RootCAs = other.TLS(t).RootCAs })
		refused(t, s, "x509", "--cluster-ca")
	})
	t.Run("system CAs", func(t *testing.T) {
		s := openWith(t, srv, func(*Config) {})
		refused(t, s, "x509", "--cluster-ca")
	})
	t.Run("no client certificate", func(t *testing.T) {
		s := openWith(t, srv, func(c *Config) { c.TLS = &tls.Config{RootCAs: certs.TLS(t).RootCAs} })
		refused(t, s, "remote error: tls", "--cluster-cert")
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		s := openWith(t, srv, func(c *Config) { c.TLS = certs.TLS(t); c.TLS.Certificates = other.TLS(t).Certificates })
		refused(t, s, "remote error: tls", "--cluster-cert")
	})
}

// TestAuth reaches an etcd with authentication enabled, with and without
// TLS, as a user that may use the prefix, with a wrong password, and as
// no user.
func TestAuth(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		name := "plain"
		if withTLS {
			name = "TLS"
		}
		t.Run(name, func(t *testing.T) {
			srv := etcdtest.Start(t, etcdtest.Options{TLS: withTLS, Auth: true})
			srv.AddUser("h1", "pw1", "/tsc/")
			conf := func(user, password string) func(*Config) {
				return func(c *Config) {
					if withTLS {
						c.TLS = srv.Certs().TLS(t)
					}
					c.Username, c.Password = user, password
				}
			}
			t.Run("right password", func(t *testing.T) {
				works(t, openWith(t, srv, conf("h1", "pw1")))
			})
			t.Run("wrong password", func(t *testing.T) {
				refused(t, openWith(t, srv, conf("h1", "pw2")), "authentication failed", "--cluster-password-file")
			})
			t.Run("no user", func(t *testing.T) {
				// Without a token etcd takes a client certificate's
				// common name for the user, who has no role here.
				want := "--cluster-user"
				if withTLS {
					want = "permission denied"
				}
				refused(t, openWith(t, srv, conf("", "")), want)
			})
			t.Run("user without permission on the prefix", func(t *testing.T) {
				srv.AddUser("h9", "pw9", "/elsewhere/")
				refused(t, openWith(t, srv, conf("h9", "pw9")), "permission denied", "readwrite")
			})
		})
	}
}

// TestTLSConfigFiles: each bad file is an ErrInvalid naming it and what
// is wrong.
func TestTLSConfigFiles(t *testing.T) {
	dir := t.TempDir()
	c := etcdtest.NewCerts(t, dir, netip.MustParseAddr("127.0.0.1"), "h1")
	other := etcdtest.NewCerts(t, t.TempDir(), netip.MustParseAddr("127.0.0.1"), "h2")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badCert := filepath.Join(dir, "bad-cert.pem")
	if err := os.WriteFile(badCert, []byte("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name           string
		ca, cert, key  string
		errText        string
		wantCA, wantKP bool
	}{
		{name: "all", ca: c.CA, cert: c.Cert, key: c.Key, wantCA: true, wantKP: true},
		{name: "CA only", ca: c.CA, wantCA: true},
		{name: "certificate only", cert: c.Cert, key: c.Key, wantKP: true},
		{name: "missing CA", ca: missing, errText: "CA certificate " + missing + ": no such file"},
		{name: "CA not PEM", ca: notPEM, errText: "not PEM"},
		{name: "CA not a certificate", ca: badCert, errText: "no PEM certificate"},
		{name: "certificate without key", ca: c.CA, cert: c.Cert, errText: "give both"},
		{name: "key without certificate", key: c.Key, errText: "give both"},
		{name: "missing key", cert: c.Cert, key: missing, errText: "client key " + missing},
		{name: "key not PEM", cert: c.Cert, key: notPEM, errText: "not PEM"},
		{name: "key of another certificate", cert: c.Cert, key: other.Key, errText: "does not match"},
		{name: "certificate in place of key", cert: c.Cert, key: c.Cert, errText: c.Cert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := TLSConfig(tc.ca, tc.cert, tc.key)
			if tc.errText != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("TLSConfig(%q, %q, %q) = %v, want ErrInvalid containing %q", tc.ca, tc.cert, tc.key, err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("TLSConfig: %v", err)
			}
			if (cfg.RootCAs != nil) != tc.wantCA || (len(cfg.Certificates) == 1) != tc.wantKP {
				t.Fatalf("TLSConfig = RootCAs %v, %d certificates; want CA %v, pair %v", cfg.RootCAs != nil, len(cfg.Certificates), tc.wantCA, tc.wantKP)
			}
		})
	}
}

// TestTLSAuthRestart: across a restart of etcd, which forgets the
// authentication tokens it gave, the store connects again with TLS and
// its user and takes changes.
func TestTLSAuthRestart(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{TLS: true, Auth: true})
	srv.AddUser("h1", "pw1", "/tsc/")
	s := openWith(t, srv, func(c *Config) { c.TLS = srv.Certs().TLS(t); c.Username, c.Password = "h1", "pw1" })
	works(t, s)
	srv.Restart()
	waitFor(t, "connected after the restart", func() bool { return s.Status().Connected })
	waitFor(t, "a network made after the restart", func() bool {
		_, err := s.CreateNetwork(context.Background(), Network{Name: "back"})
		if err != nil {
			t.Logf("CreateNetwork: %v", err)
		}
		return err == nil
	})
	if v := waitView(t, s, "network back in the view", func(v View) bool { return hasNetwork(v, "back") && hasHost(v, "h1") }); len(v.Networks) != 2 {
		t.Fatalf("View().Networks = %v, want front and back", v.Networks)
	}
}
