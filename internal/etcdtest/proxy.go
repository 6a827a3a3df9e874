package etcdtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/verify/faults"
)

// Proxy is a fault-injecting proxy between clients and a Server, listening
// on a unix socket: the faults package's proxy (the one the split-brain
// campaign uses, which resets the connections that lost bytes when a
// partition heals, as TCP would), with the socket in a short private
// directory. Faults apply to existing and new connections alike.
type Proxy struct {
	*faults.Proxy
	dir string // holds the socket
}

// Proxy starts a proxy in front of the server and registers its Close in
// t.Cleanup. It fails the test on error.
//
// Close clients that use the proxy before it closes; Proxy.Client does that
// for you.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	p, err := StartProxy(s.Endpoint)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("etcdtest: %v", err)
		}
	})
	return p
}

// StartProxy starts a proxy in front of the etcd at target (an http URL)
// without a testing.TB, for commands such as the benchmark. The caller
// closes it, after the clients that use it.
func StartProxy(target string) (*Proxy, error) {
	// A unix socket path must fit in 108 bytes, and t.TempDir() can be
	// longer than that (it embeds the test name), so use a short private
	// directory under os.TempDir instead.
	dir, err := os.MkdirTemp("", "lh")
	if err != nil {
		return nil, fmt.Errorf("proxy socket dir: %w", err)
	}
	fp, err := faults.NewProxy(filepath.Join(dir, "p.sock"), target)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &Proxy{Proxy: fp, dir: dir}, nil
}

// Close closes the proxy, with every connection through it, and removes
// its socket.
func (p *Proxy) Close() error {
	p.Proxy.Close()
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("remove proxy socket dir: %w", err)
	}
	return nil
}

// Client returns a new client that talks to the server through the proxy,
// closed in t.Cleanup before the proxy closes.
func (p *Proxy) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newTestClient(t, p.Endpoint())
}
