package etcdtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/etcdtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ctx returns a context that ends with the test or after d.
func ctx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, c *clientv3.Client, key, val string) {
	t.Helper()
	if _, err := c.Put(ctx(t, 5*time.Second), key, val); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, c *clientv3.Client, key, want string) {
	t.Helper()
	resp, err := c.Get(ctx(t, 5*time.Second), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
		t.Fatalf("Get(%q) = %v, want one value %q", key, resp.Kvs, want)
	}
}

func TestDirectClient(t *testing.T) {
	s := etcdtest.Start(t)
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") {
		t.Errorf("Endpoint = %q, want http://127.0.0.1:port", s.Endpoint)
	}
	c := s.Client(t)
	put(t, c, "k", "v")
	mustGet(t, c, "k", "v")
}

func TestProxyClient(t *testing.T) {
	s := etcdtest.Start(t)
	p := s.Proxy(t)
	if !strings.HasPrefix(p.Endpoint(), "unix:///") {
		t.Errorf("Endpoint() = %q, want unix:///absolute/path", p.Endpoint())
	}
	c := p.Client(t)
	put(t, c, "k", "through-proxy")
	// Read back directly: the write really reached the server.
	mustGet(t, s.Client(t), "k", "through-proxy")
}

// TestUnixEndpointForms records which spellings of the proxy's socket
// clientv3 accepts.
func TestUnixEndpointForms(t *testing.T) {
	s := etcdtest.Start(t)
	p := s.Proxy(t)
	path := strings.TrimPrefix(p.Endpoint(), "unix://")
	for _, ep := range []string{"unix://" + path, "unix:" + path} {
		t.Run(ep, func(t *testing.T) {
			c, err := etcdtest.NewClient(ep)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			put(t, c, "form", ep)
			mustGet(t, c, "form", ep)
		})
	}
}

func TestPartitionAndHeal(t *testing.T) {
	s := etcdtest.Start(t)
	p := s.Proxy(t)
	c := p.Client(t)
	put(t, c, "k", "before")

	p.Partition()
	gctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err := c.Get(gctx, "k")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get during partition: err = %v, want DeadlineExceeded", err)
	}
	// The server itself is fine; only the path through the proxy is cut.
	put(t, s.Client(t), "k", "during")

	p.Heal()
	start := time.Now()
	if err := etcdtest.AwaitHealthy(ctx(t, 10*time.Second), c); err != nil {
		t.Fatal(err)
	}
	t.Logf("healthy %v after Heal", time.Since(start))
	mustGet(t, c, "k", "during")
	put(t, c, "k", "after")
	mustGet(t, c, "k", "after")
}

func TestAwaitHealthyHonoursContext(t *testing.T) {
	s := etcdtest.Start(t)
	p := s.Proxy(t)
	c := p.Client(t)
	p.Partition()
	err := etcdtest.AwaitHealthy(ctx(t, 300*time.Millisecond), c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitHealthy during partition: err = %v, want DeadlineExceeded", err)
	}
}

func TestDelay(t *testing.T) {
	s := etcdtest.Start(t)
	p := s.Proxy(t)
	c := p.Client(t)
	put(t, c, "k", "v") // connect before measuring

	const d = 100 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	mustGet(t, c, "k", "v")
	// Only a lower bound: latency can only add time, and an upper bound
	// would be flaky on a loaded machine.
	if got := time.Since(start); got < 2*d {
		t.Errorf("Get with %v delay each way took %v, want >= %v", d, got, 2*d)
	}

	p.Delay(0)
	mustGet(t, c, "k", "v")
}

// TestCleanupOrder runs a full setup in a subtest so that its cleanups
// (clients, then proxy, then server) run before the parent continues.
// If the order were wrong the subtest would take seconds or hang, and
// goleak would catch anything left running.
func TestCleanupOrder(t *testing.T) {
	var srv *etcdtest.Server
	start := time.Now()
	t.Run("setup", func(t *testing.T) {
		srv = etcdtest.Start(t)
		p := srv.Proxy(t)
		// A watch holds a gRPC stream open, the case that makes
		// embed.Etcd.Close wait when a client is left open.
		for _, c := range []*clientv3.Client{srv.Client(t), p.Client(t)} {
			c.Watch(t.Context(), "w")
			put(t, c, "k", "v")
		}
		p.Partition() // closing must work even mid-partition
	})
	t.Logf("start, use and clean up took %v", time.Since(start))

	select {
	case <-srv.Etcd.Server.StopNotify():
	default:
		t.Fatal("server still running after the subtest's cleanup")
	}
}

func TestStartServerRestart(t *testing.T) {
	dir := t.TempDir()

	s, stop, err := etcdtest.StartServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := etcdtest.NewClient(s.Endpoint)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	put(t, c, "k", "kept")
	c.Close()
	stop()
	stop() // safe to call twice

	// Same data dir: the key survives a clean stop even without fsync.
	s, stop, err = etcdtest.StartServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	mustGet(t, s.Client(t), "k", "kept")
}
