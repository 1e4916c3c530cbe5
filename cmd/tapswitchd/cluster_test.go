package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

func TestClusterOptions(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("10.234.0.1"), netip.MustParseAddr("127.0.0.1")}
	base := func() clusterOptions {
		return clusterOptions{clusterTTL: cluster.DefaultTTL, vxlanPort: 4789, vxlanReceivers: 1}
	}
	tests := []struct {
		name    string
		set     func(*clusterOptions)
		errText string
	}{
		{name: "none", set: func(*clusterOptions) {}},
		{name: "advertise only", set: func(o *clusterOptions) { o.advertise = "10.234.0.1" }},
		{name: "static peers", set: func(o *clusterOptions) {
			o.advertise, o.vxlanPeers = "10.234.0.1", []string{"10.234.0.2", "10.234.0.3"}
		}},
		{name: "cluster", set: func(o *clusterOptions) {
			o.advertise, o.cluster, o.clusterHost = "10.234.0.1", "etcd=http://10.234.0.10:2379,https://10.234.0.11:2379", "h1"
		}},
		{name: "cluster without advertise", set: func(o *clusterOptions) { o.cluster = "etcd=http://10.234.0.10:2379" }, errText: "--cluster needs --advertise"},
		{name: "peer without advertise", set: func(o *clusterOptions) { o.vxlanPeers = []string{"10.234.0.2"} }, errText: "--vxlan-peer needs --advertise"},
		{name: "advertise not here", set: func(o *clusterOptions) { o.advertise = "10.234.0.9" }, errText: "not an address of this host"},
		{name: "advertise not an address", set: func(o *clusterOptions) { o.advertise = "eth0" }, errText: "want an IP address"},
		{name: "advertise IPv6", set: func(o *clusterOptions) { o.advertise = "fd00::1" }, errText: "not an address of this host"},
		{name: "peer of the other family", set: func(o *clusterOptions) { o.advertise, o.vxlanPeers = "10.234.0.1", []string{"fd00::2"} }, errText: "family"},
		{name: "advertise loopback", set: func(o *clusterOptions) { o.advertise = "127.0.0.1" }, errText: "other hosts reach"},
		{name: "other store", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "consul=http://10.0.0.1:8500" }, errText: `store "consul" is not supported`},
		{name: "no store kind", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "http://10.0.0.1:2379" }, errText: "want etcd=URL"},
		{name: "URL without port", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "etcd=http://10.0.0.1" }, errText: "http://HOST:PORT"},
		{name: "URL of another scheme", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "etcd=unix:///run/etcd.sock" }, errText: "http://HOST:PORT"},
		{name: "peer is self", set: func(o *clusterOptions) { o.advertise, o.vxlanPeers = "10.234.0.1", []string{"10.234.0.1"} }, errText: "this host's --advertise"},
		{name: "peer twice", set: func(o *clusterOptions) {
			o.advertise, o.vxlanPeers = "10.234.0.1", []string{"10.234.0.2", "10.234.0.2"}
		}, errText: "given twice"},
		{name: "peer a name", set: func(o *clusterOptions) { o.advertise, o.vxlanPeers = "10.234.0.1", []string{"host2"} }, errText: "--vxlan-peer"},
		{name: "port 0", set: func(o *clusterOptions) { o.vxlanPort = 0 }, errText: "--vxlan-port 0"},
		{name: "receivers", set: func(o *clusterOptions) { o.advertise, o.vxlanReceivers = "10.234.0.1", 4 }},
		{name: "no receiver", set: func(o *clusterOptions) { o.vxlanReceivers = 0 }, errText: "--vxlan-receivers 0"},
		{name: "too many receivers", set: func(o *clusterOptions) { o.vxlanReceivers = 17 }, errText: "--vxlan-receivers 17"},
		{name: "short TTL", set: func(o *clusterOptions) { o.clusterTTL = time.Second }, errText: "--cluster-ttl"},
		{name: "TTL not in seconds", set: func(o *clusterOptions) { o.clusterTTL = 2500 * time.Millisecond }, errText: "whole seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.set(&o)
			c, err := o.config(local)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("config() = %+v, %v; want an error containing %q", c, err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("config() = %v", err)
			}
			if o.advertise != "" && c.Advertise.String() != o.advertise {
				t.Fatalf("Advertise = %v, want %s", c.Advertise, o.advertise)
			}
			if len(c.Peers) != len(o.vxlanPeers) || c.Port != o.vxlanPort || c.Receivers != o.vxlanReceivers || c.Host != o.clusterHost {
				t.Fatalf("config() = %+v, want the options' peers, port, receivers and host", c)
			}
			if o.cluster != "" && !slices.Equal(c.Cluster, []string{"http://10.234.0.10:2379", "https://10.234.0.11:2379"}) {
				t.Fatalf("Cluster = %v", c.Cluster)
			}
		})
	}
}

// TestClusterStoreAccess checks --cluster-ca, --cluster-cert,
// --cluster-key, --cluster-user and --cluster-password-file: what they
// load, and the error of each mistake, at start.
func TestClusterStoreAccess(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("10.234.0.1")}
	dir := t.TempDir()
	c := etcdtest.NewCerts(t, dir, netip.MustParseAddr("10.234.0.10"), "h1")
	other := etcdtest.NewCerts(t, t.TempDir(), netip.MustParseAddr("10.234.0.10"), "h2")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pwFile := write("pw", "s3cret\n")
	emptyPw := write("empty", "\n")
	notPEM := write("not.pem", "hello\n")
	// Password files of other modes: WriteFile's mode passes the umask,
	// Chmod does not.
	withMode := func(name string, mode os.FileMode) string {
		p := write(name, "s3cret\n")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	readOnlyPw := withMode("pw-0400", 0o400)
	worldPw := withMode("pw-0644", 0o644)
	groupPw := withMode("pw-0640", 0o640)
	othersWritePw := withMode("pw-0602", 0o602)
	groupExecPw := withMode("pw-0610", 0o610)
	// Owned by neither root nor this process's user: nobody's, when this
	// runs as root and may give it away.
	strangerPw := ""
	if os.Geteuid() == 0 {
		strangerPw = write("pw-nobody", "s3cret\n")
		if err := os.Chown(strangerPw, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing.pem")
	const https = "etcd=https://10.234.0.10:2379"
	type accessCase struct {
		name     string
		set      func(*clusterOptions)
		errText  string
		wantTLS  bool
		wantUser string
	}
	tests := []accessCase{
		{name: "https with the system's CAs", set: func(o *clusterOptions) { o.cluster = https }},
		{name: "CA", set: func(o *clusterOptions) { o.cluster, o.clusterCA = https, c.CA }, wantTLS: true},
		{name: "CA and client certificate", set: func(o *clusterOptions) {
			o.cluster, o.clusterCA, o.clusterCert, o.clusterKey = https, c.CA, c.Cert, c.Key
		}, wantTLS: true},
		{name: "user", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = "etcd=http://10.234.0.10:2379", "h1", pwFile
		}, wantUser: "h1"},
		{name: "everything", set: func(o *clusterOptions) {
			o.cluster, o.clusterCA, o.clusterCert, o.clusterKey, o.clusterUser, o.clusterPasswordFile = https, c.CA, c.Cert, c.Key, "h1", pwFile
		}, wantTLS: true, wantUser: "h1"},
		{name: "CA with http", set: func(o *clusterOptions) { o.cluster, o.clusterCA = "etcd=http://10.234.0.10:2379", c.CA }, errText: "use https://"},
		{name: "certificate with one http URL", set: func(o *clusterOptions) {
			o.cluster, o.clusterCert, o.clusterKey = "etcd=https://10.234.0.10:2379,http://10.234.0.11:2379", c.Cert, c.Key
		}, errText: "use https://"},
		{name: "CA without cluster", set: func(o *clusterOptions) { o.clusterCA = c.CA }, errText: "--cluster-ca is for the cluster's store"},
		{name: "user without cluster", set: func(o *clusterOptions) { o.clusterUser, o.clusterPasswordFile = "h1", pwFile }, errText: "--cluster-user is for the cluster's store"},
		{name: "missing CA", set: func(o *clusterOptions) { o.cluster, o.clusterCA = https, missing }, errText: "--cluster-ca " + missing + ": CA certificate " + missing + ": no such file"},
		{name: "CA not PEM", set: func(o *clusterOptions) { o.cluster, o.clusterCA = https, notPEM }, errText: "not PEM"},
		{name: "certificate without key", set: func(o *clusterOptions) { o.cluster, o.clusterCert = https, c.Cert }, errText: "--cluster-cert needs --cluster-key"},
		{name: "key without certificate", set: func(o *clusterOptions) { o.cluster, o.clusterKey = https, c.Key }, errText: "--cluster-key needs --cluster-cert"},
		{name: "missing certificate", set: func(o *clusterOptions) { o.cluster, o.clusterCert, o.clusterKey = https, missing, c.Key }, errText: "no such file"},
		{name: "key not PEM", set: func(o *clusterOptions) { o.cluster, o.clusterCert, o.clusterKey = https, c.Cert, notPEM }, errText: "not PEM"},
		{name: "key does not match", set: func(o *clusterOptions) { o.cluster, o.clusterCert, o.clusterKey = https, c.Cert, other.Key }, errText: "does not match"},
		{name: "user without password file", set: func(o *clusterOptions) { o.cluster, o.clusterUser = https, "h1" }, errText: "--cluster-user needs --cluster-password-file"},
		{name: "password file without user", set: func(o *clusterOptions) { o.cluster, o.clusterPasswordFile = https, pwFile }, errText: "--cluster-password-file needs --cluster-user"},
		{name: "missing password file", set: func(o *clusterOptions) { o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", missing }, errText: "--cluster-password-file " + missing + ": no such file"},
		{name: "empty password", set: func(o *clusterOptions) { o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", emptyPw }, errText: "empty"},
		{name: "password file read-only", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", readOnlyPw
		}, wantUser: "h1"},
		{name: "password file readable by all", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", worldPw
		}, errText: "--cluster-password-file " + worldPw + ": its mode is 0644: group or others may get at the password it holds; make it its owner's only: chmod 600 " + worldPw},
		{name: "password file readable by the group", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", groupPw
		}, errText: "its mode is 0640"},
		{name: "password file writable by others", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", othersWritePw
		}, errText: "its mode is 0602"},
		{name: "password file with any permission for the group", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", groupExecPw
		}, errText: "chmod 600"},
		{name: "password file a directory", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", t.TempDir()
		}, errText: "not a regular file"},
	}
	if strangerPw != "" {
		tests = append(tests, accessCase{name: "password file of another user", set: func(o *clusterOptions) {
			o.cluster, o.clusterUser, o.clusterPasswordFile = https, "h1", strangerPw
		}, errText: "--cluster-password-file " + strangerPw + ": owned by uid 65534, neither root nor this daemon's user"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := clusterOptions{clusterTTL: cluster.DefaultTTL, vxlanPort: 4789, vxlanReceivers: 1, advertise: "10.234.0.1"}
			tt.set(&o)
			got, err := o.config(local)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("config() = %+v, %v; want an error containing %q", got, err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("config() = %v", err)
			}
			if (got.ClusterTLS != nil) != tt.wantTLS {
				t.Fatalf("ClusterTLS = %v, want set %v", got.ClusterTLS, tt.wantTLS)
			}
			if tt.wantTLS && (got.ClusterTLS.RootCAs == nil || (o.clusterCert != "") != (len(got.ClusterTLS.Certificates) == 1)) {
				t.Fatalf("ClusterTLS = %+v, want the CA and the client certificate given", got.ClusterTLS)
			}
			if got.ClusterUser != tt.wantUser || (tt.wantUser != "" && got.ClusterPassword != "s3cret") {
				t.Fatalf("ClusterUser, ClusterPassword = %q, %q; want %q and the file's first line", got.ClusterUser, got.ClusterPassword, tt.wantUser)
			}
		})
	}
}
