package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"
)

// loadPair loads a certificate and its key and refuses one outside its
// validity period, so that an expired certificate is named as such at
// start-up rather than as a handshake failure in the peer's logs.
func loadPair(certFile, keyFile, flags string) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return pair, fmt.Errorf("%s %s, %s: %w", flags, certFile, keyFile, err)
	}
	leaf := pair.Leaf // set by LoadX509KeyPair since Go 1.23
	now := time.Now()
	switch {
	case leaf == nil:
	case now.After(leaf.NotAfter):
		return pair, fmt.Errorf("%s %s: the certificate expired at %s: renew it", flags, certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return pair, fmt.Errorf("%s %s: the certificate is not valid before %s: check this machine's clock", flags, certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return pair, nil
}

// tlsCheck does one TLS handshake with etcd's client configuration
// against the first https endpoint and returns its error (an unknown
// authority, a wrong host name, a refused client certificate), or nil when
// it succeeds or the endpoint cannot be reached at all. gRPC would report
// such a failure only as a deadline after its dial timeout, and retry it
// meanwhile; this names it in a second.
func tlsCheck(ctx context.Context, tc *tls.Config, endpoints []string) error {
	if tc == nil || len(endpoints) == 0 {
		return nil
	}
	u, err := url.Parse(endpoints[0])
	if err != nil || u.Scheme != "https" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil // not a TLS problem
		}
		return refused(err, tc)
	}
	defer conn.Close()
	// With TLS 1.3 the server judges the client certificate after the
	// client's handshake is done: its verdict arrives on the first read.
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "remote error" {
			return refused(err, tc)
		}
	}
	return nil
}

// refused explains an alert from the server (with TLS 1.2 it comes during
// the handshake, with 1.3 on the first read): it refused this client.
func refused(err error, tc *tls.Config) error {
	var opErr *net.OpError
	switch {
	case !errors.As(err, &opErr) || opErr.Op != "remote error":
		return err
	case len(tc.Certificates) == 0:
		return fmt.Errorf("etcd requires a client certificate: pass --cert and --key (%w)", err)
	}
	return fmt.Errorf("etcd refused the client certificate (%w): check --cert against etcd's --trusted-ca-file", err)
}

// loadCAs reads a --cacert bundle, refusing a file with no certificate in
// it rather than trusting nothing.
func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--cacert: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", file)
	}
	return roots, nil
}
