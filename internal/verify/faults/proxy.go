package faults

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// proxyCloseTimeout bounds how long Close waits for proxied connections.
const proxyCloseTimeout = 10 * time.Second

// Proxy forwards connections from a unix socket to an etcd member's client
// port, and can drop or delay the traffic. A unix socket, because a
// numeric port would have to be picked and would listen on every
// interface.
//
// It is written here rather than taken from go.etcd.io/etcd/pkg/v3/proxy
// because that one keeps an accepted connection open, silent, when it
// cannot dial the target: with an etcd member down, a client's new
// connection then hangs in gRPC's 20 s connect timeout instead of failing
// at once as it would against a closed port, and a restarted cluster
// looks unreachable for half a minute.
type Proxy struct {
	ln       net.Listener
	to       string // host:port
	endpoint string

	mu          sync.Mutex
	partitioned bool
	delay       time.Duration
	closed      bool
	conns       map[net.Conn]*bool // dirty: it lost bytes to a partition
	wg          sync.WaitGroup
}

// NewProxy starts a proxy listening on the unix socket sock (at most 107
// bytes of path) and forwarding to the client URL to (http://host:port).
func NewProxy(sock, to string) (*Proxy, error) {
	u, err := url.Parse(to)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("faults: proxy target %q: want http://host:port", to)
	}
	if len(sock) > 107 {
		return nil, fmt.Errorf("faults: socket path %q is longer than 107 bytes", sock)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("faults: proxy: %w", err)
	}
	p := &Proxy{ln: ln, to: u.Host, endpoint: "unix://" + sock, conns: map[net.Conn]*bool{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Endpoint is the client endpoint, unix:///path.
func (p *Proxy) Endpoint() string { return p.endpoint }

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			if p.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(in, new(bool)) {
			in.Close()
			return
		}
		p.wg.Go(func() { p.serve(in) })
	}
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// track registers c, with the dirty flag of its pair, for Heal and Close;
// false once closed.
func (p *Proxy) track(c net.Conn, dirty *bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = dirty
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// serve connects in to the target, closing it at once when the target
// cannot be reached (a refused connection, as the client would see it
// without the proxy).
func (p *Proxy) serve(in net.Conn) {
	defer p.untrack(in)
	defer in.Close()
	out, err := net.DialTimeout("tcp", p.to, time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	dirty := p.conns[in]
	p.mu.Unlock()
	if !p.track(out, dirty) {
		out.Close()
		return
	}
	defer p.untrack(out)
	defer out.Close()
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(out, in, dirty); out.Close(); in.Close() })
	wg.Go(func() { p.pipe(in, out, dirty); out.Close(); in.Close() })
	wg.Wait()
}

// chunk is data read at some time, to be written at deliver.
type chunk struct {
	data    []byte
	deliver time.Time
}

// pipe copies src to dst, dropping what is read or due while partitioned
// (and marking the pair dirty) and holding each chunk for the latency in
// force when it was read. Order is kept.
func (p *Proxy) pipe(dst, src net.Conn, dirty *bool) {
	q := make(chan chunk, 256)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer dst.Close()
		for c := range q {
			if d := time.Until(c.deliver); d > 0 {
				time.Sleep(d)
			}
			if drop, _ := p.state(); drop {
				p.dirty(dirty)
				continue
			}
			if _, err := dst.Write(c.data); err != nil {
				for range q { // drain so the reader never blocks
				}
				return
			}
		}
	})
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			drop, delay := p.state()
			if drop {
				p.dirty(dirty)
			} else {
				q <- chunk{data: append([]byte(nil), buf[:n]...), deliver: time.Now().Add(delay)}
			}
		}
		if err != nil {
			break
		}
	}
	close(q)
	wg.Wait()
}

func (p *Proxy) dirty(d *bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	*d = true
}

func (p *Proxy) state() (drop bool, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.partitioned, p.delay
}

// Partition drops all traffic both ways and keeps connections open, as a
// real partition looks to a client: requests hang until their deadline.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partitioned = true
}

// Heal ends a partition and resets every connection that lost bytes to it.
// TCP never delivers a stream with a hole in it: across a real partition it
// retransmits, or gives up and resets the connection. Forwarding the rest of
// a stream whose middle was dropped would instead feed etcd and the client
// corrupt HTTP/2 (PROTOCOL_ERROR on every later stream of that connection),
// a fault no network makes.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partitioned = false
	for c, dirty := range p.conns {
		if *dirty {
			c.Close()
		}
	}
}

// Delay adds latency d each way to data read from now on (0 removes it).
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = max(d, 0)
}

// Close stops the proxy and closes every proxied connection, waiting for
// its goroutines up to a bound.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(proxyCloseTimeout):
	}
}
