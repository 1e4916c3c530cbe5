package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// TLSConfig loads the PEM files of TLS to etcd, for Config.TLS: caFile,
// the CA that signed etcd's server certificate ("" for the system's
// CAs), and certFile and keyFile, this host's client certificate and its
// key (both or neither). Each error names the file and what is wrong
// with it.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := readPEM(caFile, "CA certificate")
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%w: CA certificate %s: no PEM certificate (BEGIN CERTIFICATE) that parses", ErrInvalid, caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate and its key go together; give both or neither", ErrInvalid)
	}
	if certFile != "" {
		cb, err := readPEM(certFile, "client certificate")
		if err != nil {
			return nil, err
		}
		kb, err := readPEM(keyFile, "client key")
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(cb, kb)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s and key %s: %v", ErrInvalid, certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// readPEM reads a file that must hold PEM.
func readPEM(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s %s: no such file", ErrInvalid, what, path)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
	}
	if blk, _ := pem.Decode(b); blk == nil {
		return nil, fmt.Errorf("%w: %s %s: not PEM (no -----BEGIN line)", ErrInvalid, what, path)
	}
	return b, nil
}
