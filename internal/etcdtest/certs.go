package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are the PEM files of a test CA and the certificates it signed,
// all in one directory.
type Certs struct {
	// CA is the CA's certificate: the file a client trusts.
	CA string
	// Cert and Key are a client certificate and its key.
	Cert, Key string
	// ServerCert and ServerKey are etcd's.
	ServerCert, ServerKey string
}

// TLS returns a client configuration that trusts c.CA and presents the
// client certificate.
func (c Certs) TLS(tb testing.TB) *tls.Config {
	tb.Helper()
	pemCA, err := os.ReadFile(c.CA)
	if err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		tb.Fatalf("etcdtest: %s holds no certificate", c.CA)
	}
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// NewCerts makes, in dir, an ECDSA CA, a server certificate for ip (and
// 127.0.0.1, localhost) and a client certificate of common name client,
// each valid for a day.
func NewCerts(tb testing.TB, dir string, ip netip.Addr, client string) Certs {
	tb.Helper()
	c := Certs{
		CA:         filepath.Join(dir, "ca.pem"),
		Cert:       filepath.Join(dir, "client.pem"),
		Key:        filepath.Join(dir, "client-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
	}
	caKey := newKey(tb)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tapswitch test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatalf("etcdtest: make the CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	writePEM(tb, c.CA, "CERTIFICATE", caDER)

	leaf := func(serial int64, cn string, usage []x509.ExtKeyUsage, ips []net.IP, dns []string, certFile, keyFile string) {
		key := newKey(tb)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  usage,
			IPAddresses:  ips,
			DNSNames:     dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			tb.Fatalf("etcdtest: make certificate %s: %v", cn, err)
		}
		writePEM(tb, certFile, "CERTIFICATE", der)
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			tb.Fatalf("etcdtest: %v", err)
		}
		writePEM(tb, keyFile, "PRIVATE KEY", kder)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if ip.IsValid() && ip != netip.MustParseAddr("127.0.0.1") {
		ips = append(ips, net.IP(ip.AsSlice()))
	}
	// etcd's gateway dials etcd itself with the server certificate, which
	// is then a client certificate too.
	leaf(2, "etcd", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, ips, []string{"localhost"}, c.ServerCert, c.ServerKey)
	leaf(3, client, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil, c.Cert, c.Key)
	return c
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("etcdtest: generate a key: %v", err)
	}
	return k
}

func writePEM(tb testing.TB, path, kind string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
}
