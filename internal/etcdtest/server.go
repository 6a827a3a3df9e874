package etcdtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/leasehold/leasehold/internal/embedetcd"
)

// startTimeout bounds how long StartServer waits for the server to become
// ready. It normally takes ~50ms; the margin covers -race on a busy
// machine.
const startTimeout = 30 * time.Second

// Server is an embedded single-member etcd on loopback with fast test
// settings.
type Server struct {
	// Etcd is the running server, for tests that need to reach inside
	// (for example Etcd.Server for the member ID or raft status).
	Etcd *embed.Etcd
	// Endpoint is the client URL, http://127.0.0.1:NNNN.
	Endpoint string
}

// Start starts a Server for a test (tweaks, if any, adjust its config), with its data in t.TempDir(), and
// registers its Close in t.Cleanup. It fails the test on error.
//
// Call Start before creating clients or proxies for the server so that
// their cleanups, registered later, run first.
func Start(t testing.TB, tweaks ...func(*embed.Config)) *Server {
	t.Helper()
	s, stop, err := StartServer(t.TempDir(), tweaks...)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(stop)
	return s
}

// StartServer starts a Server without a testing.TB, for TestMain or a
// child process. dir is its data directory; it may hold data from an
// earlier server, which is then recovered. The returned stop func closes
// the server and is safe to call more than once; the caller removes dir.
//
// Close every client of the server before calling stop: the server waits
// several seconds for open gRPC streams otherwise.
func StartServer(dir string, tweaks ...func(*embed.Config)) (*Server, func(), error) {
	// Port 0 lets the OS pick free ports, so parallel tests and packages
	// never collide. The real client address is read back after start.
	cfg, err := embedetcd.NewConfig("etcdtest", dir, "http://127.0.0.1:0", "http://127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	// A 10ms tick elects the single member in ~50ms instead of ~1s and
	// lowers the minimum lease TTL from 2s to 1s, so lease expiry tests
	// are quick too.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	// Tests never survive a power loss; fsync only costs time.
	cfg.UnsafeNoFsync = true
	for _, tweak := range tweaks {
		tweak(cfg)
	}
	e, err := embedetcd.Run(context.Background(), cfg, startTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("start etcd: %w", err)
	}
	s := &Server{
		Etcd:     e,
		Endpoint: "http://" + e.Clients[0].Addr().String(),
	}
	return s, sync.OnceFunc(e.Close), nil
}

// Client returns a new client to the server, closed in t.Cleanup. Since
// it is registered after the server's Close, it is closed first.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newTestClient(t, s.Endpoint)
}
