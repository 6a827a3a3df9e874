package etcdtest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/zap"
)

const (
	// proxyReadyTimeout bounds how long Server.Proxy waits for the proxy
	// to start serving.
	proxyReadyTimeout = 10 * time.Second
	// proxyCloseTimeout bounds how long the cleanup waits for the proxy
	// to close before reporting a client left open.
	proxyCloseTimeout = 10 * time.Second
)

// Proxy is a fault-injecting TCP proxy between clients and a Server,
// listening on a unix socket. Faults apply to existing and new
// connections alike.
type Proxy struct {
	srv      proxy.Server
	dir      string // holds the socket
	endpoint string
	drained  chan struct{} // closed when drainErrors returns

	mu     sync.Mutex
	paused bool
}

// Proxy starts a proxy in front of the server, waits until it is ready and
// registers its Close in t.Cleanup. It fails the test on error.
//
// Its Close waits for every proxied connection to end, so close clients
// that use the proxy first; Proxy.Client does that for you.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	p, err := StartProxy(s.Endpoint)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("etcdtest: %v: close clients made with NewClient(proxy.Endpoint()) before the test ends", err)
		}
	})
	return p
}

// StartProxy starts a proxy in front of the etcd at target (an http URL)
// without a testing.TB, for commands such as the benchmark, and waits until
// it is ready. The caller closes it, after the clients that use it.
func StartProxy(target string) (*Proxy, error) {
	to, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("proxy target %q: %w", target, err)
	}
	// A unix socket path must fit in 108 bytes, and t.TempDir() can be
	// longer than that (it embeds the test name), so use a short
	// private directory under os.TempDir instead.
	dir, err := os.MkdirTemp("", "lh")
	if err != nil {
		return nil, fmt.Errorf("proxy socket dir: %w", err)
	}
	sock := filepath.Join(dir, "p.sock")
	srv := proxy.NewServer(proxy.ServerConfig{
		Logger: zap.NewNop(),
		From:   url.URL{Scheme: "unix", Host: sock},
		To:     *to,
	})
	// NewServer reports a failed Listen on Error() and never becomes
	// Ready, so wait for either.
	select {
	case <-srv.Ready():
	case err := <-srv.Error():
		_ = srv.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start proxy: %w", err)
	case <-time.After(proxyReadyTimeout):
		_ = srv.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("proxy not ready after %v", proxyReadyTimeout)
	}
	p := &Proxy{
		srv: srv,
		dir: dir,
		// sock is absolute, so this is unix:///tmp/lh.../p.sock, which
		// clientv3 passes to gRPC as an absolute unix path.
		endpoint: "unix://" + sock,
		drained:  make(chan struct{}),
	}
	go p.drainErrors()
	return p, nil
}

// drainErrors discards the proxy's errors until it is closed. The proxy
// reports every I/O error (resets and broken pipes are routine when
// clients disconnect) on a 16-slot channel, and its goroutines block
// once that is full, which would stall all proxied traffic.
func (p *Proxy) drainErrors() {
	defer close(p.drained)
	for {
		select {
		case <-p.srv.Error():
		case <-p.srv.Done():
			return
		}
	}
}

// Close closes the proxy and removes its socket. It gives up waiting after
// proxyCloseTimeout, with an error, when a client connected through it keeps
// it open; once that client's server side ends, the proxy finishes closing.
func (p *Proxy) Close() error {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		// The listener's close error is not interesting: the socket
		// directory is removed next anyway.
		_ = p.srv.Close()
	}()
	var err error
	select {
	case <-closed:
	case <-time.After(proxyCloseTimeout):
		err = fmt.Errorf("proxy still closing after %v", proxyCloseTimeout)
	}
	<-p.drained
	if rmErr := os.RemoveAll(p.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("remove proxy socket dir: %w", rmErr)
	}
	return err
}

// Endpoint returns the proxy's client endpoint, unix:///path/to/socket.
func (p *Proxy) Endpoint() string { return p.endpoint }

// Client returns a new client that talks to the server through the proxy,
// closed in t.Cleanup before the proxy closes.
func (p *Proxy) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newTestClient(t, p.endpoint)
}

// Partition drops all traffic in both directions while keeping
// connections open, so requests hang until their deadline, as in a real
// network partition. Bytes dropped mid-stream corrupt the gRPC
// connection: after Heal, use AwaitHealthy before expecting requests to
// succeed.
func (p *Proxy) Partition() {
	p.srv.BlackholeTx()
	p.srv.BlackholeRx()
}

// Heal stops dropping traffic.
func (p *Proxy) Heal() {
	p.srv.UnblackholeTx()
	p.srv.UnblackholeRx()
}

// Delay adds latency d to traffic in each direction, so a request and
// its response take at least 2d longer. Data is delayed, never lost.
// Delay(0) is Undelay().
func (p *Proxy) Delay(d time.Duration) {
	if d <= 0 {
		// The proxy ignores a non-positive latency rather than
		// clearing the current one.
		p.Undelay()
		return
	}
	// A random variation of 0 makes the latency exact, hence
	// assertions on it deterministic.
	p.srv.DelayTx(d, 0)
	p.srv.DelayRx(d, 0)
}

// Undelay removes the latency added by Delay.
func (p *Proxy) Undelay() {
	p.srv.UndelayTx()
	p.srv.UndelayRx()
}

// Pause stalls traffic in both directions without dropping it, like a
// congested link: requests hang and complete after Unpause, and the
// connection stays usable.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The proxy replaces its pause channel on every PauseTx/Rx and
	// Unpause only releases the latest one, so pausing twice would leave
	// traffic stalled on the first for good.
	if p.paused {
		return
	}
	p.paused = true
	p.srv.PauseTx()
	p.srv.PauseRx()
}

// Unpause resumes traffic stalled by Pause.
func (p *Proxy) Unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	p.srv.UnpauseTx()
	p.srv.UnpauseRx()
}
