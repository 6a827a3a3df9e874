package bench

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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
