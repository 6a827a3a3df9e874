package testcerts_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/leasehold/leasehold/internal/testcerts"
)

// A server and a client certificate from one CA complete a mutual TLS
// handshake; an expired client certificate is refused.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	srv := ca.Issue(t, dir, "server", testcerts.Server, testcerts.Options{})
	good := ca.Issue(t, dir, "client", testcerts.Client, testcerts.Options{})
	old := ca.Issue(t, dir, "old", testcerts.Client, testcerts.Options{Expired: true})

	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.File)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file: %v", err)
	}
	load := func(p testcerts.Pair) tls.Certificate {
		c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	handshake := func(client testcerts.Pair) error {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		s := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{load(srv)}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
		done := make(chan error, 1)
		go func() { done <- s.Handshake(); a.Close() }()
		c := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{load(client)}})
		cerr := c.Handshake()
		if cerr == nil {
			// TLS 1.3 reports the server's verdict on the first read.
			_, cerr = c.Read(make([]byte, 1))
			if cerr != nil && strings.Contains(cerr.Error(), "EOF") {
				cerr = nil
			}
		}
		if serr := <-done; serr != nil {
			return serr
		}
		return cerr
	}
	if err := handshake(good); err != nil {
		t.Errorf("good client certificate: %v", err)
	}
	if err := handshake(old); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired client certificate: %v; want an expiry error", err)
	}
}
