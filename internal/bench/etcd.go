package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// keepAliveMethod is the gRPC method of lease renewals.
const keepAliveMethod = "/etcdserverpb.Lease/LeaseKeepAlive"

// Counter counts the requests a client sends to etcd: one per unary call and
// one per message sent on a stream (a renewal, a watch creation or
// cancellation), including retries.
type Counter struct {
	total    atomic.Int64
	renewals atomic.Int64

	mu       sync.Mutex
	byMethod map[string]int64
}

// Total is every request sent so far.
func (c *Counter) Total() int64 { return c.total.Load() }

// NonRenewal is the requests sent so far other than lease renewals.
func (c *Counter) NonRenewal() int64 { return c.total.Load() - c.renewals.Load() }

// methods returns a copy of the counts per gRPC method.
func (c *Counter) methods() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byMethod)
}

// methodsSince lists the requests per gRPC method since before (a result
// of methods), as "Service/Method=n" sorted by method; renewals too unless
// noRenewals.
func (c *Counter) methodsSince(before map[string]int64, noRenewals bool) []string {
	var out []string
	for m, n := range c.methods() {
		if noRenewals && m == keepAliveMethod {
			continue
		}
		if d := n - before[m]; d > 0 {
			out = append(out, fmt.Sprintf("%s=%d", strings.TrimPrefix(m, "/etcdserverpb."), d))
		}
	}
	sort.Strings(out)
	return out
}

func (c *Counter) add(method string) {
	c.total.Add(1)
	if method == keepAliveMethod {
		c.renewals.Add(1)
	}
	c.mu.Lock()
	if c.byMethod == nil {
		c.byMethod = make(map[string]int64)
	}
	c.byMethod[method]++
	c.mu.Unlock()
}

func (c *Counter) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.add(method)
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *Counter) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &countingStream{ClientStream: s, c: c, method: method}, nil
}

type countingStream struct {
	grpc.ClientStream
	c      *Counter
	method string
}

func (s *countingStream) SendMsg(m any) error {
	s.c.add(s.method)
	return s.ClientStream.SendMsg(m)
}

// sumNonRenewal adds up the non-renewal requests of counters.
func sumNonRenewal(cs []*Counter) int64 {
	var n int64
	for _, c := range cs {
		n += c.NonRenewal()
	}
	return n
}

// newClient returns a quiet client for endpoints whose requests, if ctr is
// not nil, are counted by ctr.
func newClient(endpoints []string, ctr *Counter) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if ctr != nil {
		cfg.DialOptions = []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(ctr.unary),
			grpc.WithChainStreamInterceptor(ctr.stream),
		}
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return c, nil
}

// partitionProxy is a TCP proxy in front of etcd that can blackhole traffic
// in both directions while keeping connections open, as a real network
// partition does. It listens on a unix socket, like internal/etcdtest's
// proxy, which needs a testing.TB.
type partitionProxy struct {
	srv      proxy.Server
	dir      string
	endpoint string // unix:///path
	drained  chan struct{}
}

func newPartitionProxy(target string) (*partitionProxy, error) {
	to, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("proxy target %q: %w", target, err)
	}
	// A unix socket path must fit in 108 bytes: keep it short.
	dir, err := os.MkdirTemp("", "lhb")
	if err != nil {
		return nil, fmt.Errorf("proxy socket dir: %w", err)
	}
	sock := filepath.Join(dir, "p.sock")
	srv := proxy.NewServer(proxy.ServerConfig{
		Logger: zap.NewNop(),
		From:   url.URL{Scheme: "unix", Host: sock},
		To:     *to,
	})
	select {
	case <-srv.Ready():
	case err := <-srv.Error():
		_ = srv.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start proxy: %w", err)
	case <-time.After(10 * time.Second):
		_ = srv.Close()
		_ = os.RemoveAll(dir)
		return nil, errors.New("start proxy: not ready after 10s")
	}
	p := &partitionProxy{srv: srv, dir: dir, endpoint: "unix://" + sock, drained: make(chan struct{})}
	go p.drainErrors()
	return p, nil
}

// drainErrors discards the proxy's I/O errors: it reports them on a 16-slot
// channel and stalls all traffic once that is full.
func (p *partitionProxy) drainErrors() {
	defer close(p.drained)
	for {
		select {
		case <-p.srv.Error():
		case <-p.srv.Done():
			return
		}
	}
}

func (p *partitionProxy) partition() {
	p.srv.BlackholeTx()
	p.srv.BlackholeRx()
}

func (p *partitionProxy) heal() {
	p.srv.UnblackholeTx()
	p.srv.UnblackholeRx()
}

// close closes the proxy; close its clients first, or it waits for their
// connections (up to 10s).
func (p *partitionProxy) close() {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = p.srv.Close()
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
	}
	<-p.drained
	_ = os.RemoveAll(p.dir)
}
