// Package etcdtest runs real etcd inside tests and injects real network
// faults between clients and that etcd. There are no mocks: every helper
// drives an embedded etcd server (go.etcd.io/etcd/server/v3/embed) through
// the ordinary clientv3 client, so tests exercise the same code paths as
// production.
//
// # Servers
//
// [Start] runs a single-member etcd on loopback with settings tuned for
// tests: 10ms heartbeat and 100ms election timeout (startup in ~50ms and a
// 1s minimum lease TTL instead of 2s), fsync disabled, logging discarded,
// OS-assigned ports. It registers the server's shutdown with t.Cleanup.
// [StartServer] does the same without a testing.TB, for TestMain or a child
// process, and leaves the data directory to the caller, so a server can be
// stopped and started again on the same data.
//
// # Clients
//
// [Server.Client] and [Proxy.Client] return clients that are closed in
// t.Cleanup. Because cleanups run last-registered first, a client created
// after its server (or proxy) is closed before it. The order matters:
// embed.Etcd.Close waits several seconds for open gRPC streams to drain,
// and the proxy's Close waits for every proxied connection to end, so
// closing clients first makes teardown take milliseconds. Clients made
// with [NewClient] are the caller's to close, and must be closed before
// the server or proxy they talk to.
//
// # Faults
//
// [Server.Proxy] puts the faults package's proxy (the one the split-brain
// campaign uses) between clients and the server. [Proxy.Partition] silently
// drops traffic in both directions while keeping connections open, which is
// what a real network partition looks like to a client: requests hang until
// their deadline rather than failing fast. [Proxy.Delay] adds latency.
//
// The proxy listens on a unix socket in a short private temp directory: a
// numeric port would listen on all interfaces; a unix socket needs neither.
//
// [Proxy.Heal] resets the connections that lost bytes during the partition,
// as TCP would have, so the first request after it may fail with
// codes.Unavailable while gRPC reconnects. Use [AwaitHealthy] to wait for
// recovery instead of asserting on the first request.
//
// # Example
//
//	func TestLeaseSurvivesPartition(t *testing.T) {
//		srv := etcdtest.Start(t)
//		p := srv.Proxy(t)
//		c := p.Client(t)
//
//		p.Partition()
//		// ... assert behaviour while cut off ...
//		p.Heal()
//
//		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//		defer cancel()
//		if err := etcdtest.AwaitHealthy(ctx, c); err != nil {
//			t.Fatal(err)
//		}
//	}
package etcdtest
