package leases

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/clock"
)

// Lease is an etcd lease renewed on its own keepalive stream and held locally
// only as long as etcd is certain to hold it (see the package doc). Its
// context ends, with a cause, when it is lost, revoked or closed; after that
// it is never renewed again.
type Lease struct {
	client *clientv3.Client
	cfg    Config
	id     clientv3.LeaseID
	ttl    time.Duration // as granted
	outer  *Lease        // the lease this one is nested within, if any
	open   streamOpener

	heldUntil atomic.Int64 // clock.Time of this lease alone; only grows
	renewals  atomic.Int64
	failures  atomic.Int64

	ctx    context.Context
	cancel context.CancelCauseFunc

	stopOnce sync.Once
	stop     chan struct{} // closed to end the keepalive loop
	done     chan struct{} // closed when the keepalive loop has returned

	trace func(step string) // tests: told "ack" and "replaced" by the keepalive loop
}

// GrantOption adjusts how Grant grants a lease.
type GrantOption func(*grantOptions)

type grantOptions struct{ outer *Lease }

// Within nests the lease in outer: HeldUntil and Deadline never exceed
// outer's, because work under both must stop before either could expire.
func Within(outer *Lease) GrantOption {
	return func(o *grantOptions) { o.outer = outer }
}

// Grant grants a lease of cfg.TTL and starts renewing it. It fails with an
// error wrapping ErrInvalidConfig for a bad cfg, and with ErrTTLRaised when
// etcd granted a different TTL (the request is below the cluster's minimum).
func Grant(ctx context.Context, c *clientv3.Client, cfg Config, opts ...GrantOption) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o grantOptions
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.WithDefaults()
	sent := cfg.Clock.Now()
	resp, err := c.Grant(ctx, int64(cfg.TTL/time.Second))
	if err != nil {
		return nil, fmt.Errorf("leases: grant: %w", err)
	}
	granted := time.Duration(resp.TTL) * time.Second
	if granted != cfg.TTL {
		revokeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TTL)
		defer cancel()
		_, _ = c.Revoke(revokeCtx, resp.ID)
		return nil, fmt.Errorf("%w: etcd granted %s for TTL %s: set TTL to at least %s", ErrTTLRaised, granted, cfg.TTL, granted)
	}
	open := func(ctx context.Context) (keepAliveStream, error) {
		return pb.NewLeaseClient(c.ActiveConnection()).LeaseKeepAlive(clientv3.WithRequireLeader(ctx))
	}
	l := newLease(cfg, resp.ID, granted, sent, open)
	l.client, l.outer = c, o.outer
	l.start(sent)
	return l, nil
}

// newLease prepares a lease granted ttl by a request sent at sent; start
// begins renewing it on streams from open.
func newLease(cfg Config, id clientv3.LeaseID, ttl time.Duration, sent clock.Time, open streamOpener) *Lease {
	l := &Lease{
		cfg:  cfg,
		id:   id,
		ttl:  ttl,
		open: open,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	l.heldUntil.Store(int64(sent.Add(heldFor(ttl, cfg.Rho, cfg.Guard))))
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	return l
}

func (l *Lease) start(sent clock.Time) { go l.keepalive(sent) }

// ID is the etcd lease ID.
func (l *Lease) ID() clientv3.LeaseID { return l.id }

// TTL is the TTL etcd granted.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Config is the lease's configuration, defaults applied.
func (l *Lease) Config() Config { return l.cfg }

// HeldUntil is the instant until which the lease, and every lease it is
// nested Within, is certainly held in etcd, given clock drift below
// Config.Rho. It only moves later, and stops moving once the lease is lost.
func (l *Lease) HeldUntil() clock.Time {
	h := l.ownHeldUntil()
	if l.outer != nil {
		h = min(h, l.outer.HeldUntil())
	}
	return h
}

func (l *Lease) ownHeldUntil() clock.Time { return clock.Time(l.heldUntil.Load()) }

// FenceAt is the instant at which the lease is declared lost locally if no
// later renewal has been acknowledged: this lease's own HeldUntil minus the
// stop budget. (A lease nested Within another is also stopped when the outer
// one is lost, by whoever nests them.)
func (l *Lease) FenceAt() clock.Time { return l.ownHeldUntil().Add(-l.cfg.StopBudget) }

// Ctx is a context that ends when the lease is lost, revoked or closed;
// context.Cause tells which (ErrExpired, ErrNotFound, ErrRevoked, ErrClosed).
func (l *Lease) Ctx() context.Context { return l.ctx }

// Done is Ctx().Done().
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Err is nil while the lease is held, else why it is not.
func (l *Lease) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

// Renewals counts acknowledged renewals; Failures counts renewal streams
// that broke or stalled and were replaced.
func (l *Lease) Renewals() int64 { return l.renewals.Load() }

// Failures counts renewal streams that broke or stalled and were replaced.
func (l *Lease) Failures() int64 { return l.failures.Load() }

// Close stops renewing without revoking: etcd expires the lease after its
// TTL. The lease's context ends with ErrClosed unless it had already ended.
func (l *Lease) Close() {
	l.halt(ErrClosed)
}

// Revoke stops renewing and revokes the lease in etcd, deleting its keys at
// once. A lease etcd no longer has counts as revoked.
func (l *Lease) Revoke(ctx context.Context) error {
	l.halt(ErrRevoked)
	if l.client == nil {
		return nil
	}
	_, err := l.client.Revoke(ctx, l.id)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("leases: revoke %x: %w", int64(l.id), err)
	}
	return nil
}

// halt ends the keepalive loop and waits for it; the context ends with cause
// unless it had ended already.
func (l *Lease) halt(cause error) {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.cancel(cause)
}

// never is an instant no timer reaches: a timer armed for it is idle.
const never = clock.Time(math.MaxInt64)

// keepalive owns the renewal stream and the fence timer. Renewals go out every
// RenewInterval; a broken or stalled stream is replaced at once; every
// acknowledged renewal moves HeldUntil to its send time plus the held TTL.
// Every timer is on the lease's clock.
func (l *Lease) keepalive(granted clock.Time) {
	defer close(l.done)
	clk := l.cfg.Clock
	fence := clk.NewTimer(l.FenceAt())
	defer fence.Stop()
	renew := clk.NewTimer(granted.Add(l.cfg.RenewInterval))
	defer renew.Stop()
	// A renewal unanswered for stallAfter means the stream is stuck (for
	// example blackholed); it is replaced and the renewal retried at once.
	w := stallWatch{after: l.cfg.RenewInterval / 2}
	stall := clk.NewTimer(never)
	defer stall.Stop()

	// st is nil between a broken stream and its replacement; acks is then
	// nil too, so the loop waits on the fence and the reopen timer alone.
	var st *renewStream
	var acks <-chan ack
	defer func() { st.close() }()
	reopen := clk.NewTimer(clk.Now()) // the first stream opens at once
	defer reopen.Stop()
	// rearm points the stall timer at the oldest outstanding request; it
	// runs after everything that changes what is outstanding, so no request
	// can go unwatched.
	rearm := func() {
		if st == nil {
			stall.Reset(never)
			return
		}
		stall.Reset(w.due(st.oldestPending()))
	}
	kick := func() {
		w.kicked(clk.Now())
		st.kick()
		rearm()
	}
	replace := func() {
		l.failures.Add(1)
		st.close()
		st, acks = nil, nil
		w = stallWatch{after: w.after}
		rearm()
		// Pace replacement so an instantly failing stream cannot spin.
		reopen.Reset(clk.Now().Add(minStreamGap))
		l.traced("replaced")
	}
	for {
		select {
		case <-l.stop:
			return
		case <-fence.C():
			if l.fenced(fence) {
				return
			}
		case <-reopen.C():
			reopen.Reset(never)
			st = openRenewStream(l.open, l.id, clk)
			acks = st.acks
			kick() // a new stream renews at once
		case <-renew.C():
			renew.Reset(clk.Now().Add(l.cfg.RenewInterval))
			if st != nil {
				kick() // else the next stream renews as it opens
			}
		case <-stall.C():
			if st == nil {
				continue
			}
			if due := w.due(st.oldestPending()); clk.Now().Before(due) {
				stall.Reset(due)
				continue
			}
			replace()
		case a := <-acks:
			if a.err != nil {
				replace()
				continue
			}
			if a.ttl <= 0 {
				l.cancel(ErrNotFound)
				return
			}
			l.renewals.Add(1)
			w.acked(a.sent)
			rearm()
			until := a.sent.Add(heldFor(time.Duration(a.ttl)*time.Second, l.cfg.Rho, l.cfg.Guard))
			if until.After(l.ownHeldUntil()) {
				l.heldUntil.Store(int64(until))
				fence.Reset(l.FenceAt())
			}
			l.traced("ack")
		}
	}
}

func (l *Lease) traced(step string) {
	if l.trace != nil {
		l.trace(step)
	}
}

// stallWatch decides when a renewal stream counts as stalled. A request
// is outstanding from the moment the loop asks for it (the stream's sender
// records its send time a little later) until an answer to it, or to a later
// request, arrives.
type stallWatch struct {
	after    time.Duration
	kickedAt clock.Time // the loop's latest request for a renewal
	answered clock.Time // send time of the newest answered request
}

func (w *stallWatch) kicked(now clock.Time) { w.kickedAt = now }

func (w *stallWatch) acked(sent clock.Time) {
	if sent > w.answered {
		w.answered = sent
	}
}

// due is when the stream counts as stalled, given the send time of its oldest
// unanswered request (if waiting); never while nothing is outstanding.
func (w *stallWatch) due(oldest clock.Time, waiting bool) clock.Time {
	start := never
	if waiting {
		start = oldest
	}
	// A request asked for but not yet recorded by the sender: its send time
	// will be at or after kickedAt, so an answer sent since settles it.
	if w.kickedAt != 0 && w.answered < w.kickedAt && w.kickedAt < start {
		start = w.kickedAt
	}
	if start == never {
		return never
	}
	return start.Add(w.after)
}

// minStreamGap paces the replacement of renewal streams.
const minStreamGap = 50 * time.Millisecond

// fenced reports whether the fence time has really passed (the timer may
// belong to an older arming) and, if so, ends the lease's context.
func (l *Lease) fenced(fence clock.Timer) bool {
	if l.cfg.Clock.Now().Before(l.FenceAt()) {
		fence.Reset(l.FenceAt())
		return false
	}
	l.cancel(ErrExpired)
	return true
}

// ack is one keepalive answer, matched to the send time of its request.
type ack struct {
	sent clock.Time
	ttl  int64
	err  error
}

// renewStream is one LeaseKeepAlive stream. Its sends and receives run on
// goroutines of their own so that a stalled network can never delay the
// keepalive loop's fence timer.
type renewStream struct {
	clk    clock.Clock
	id     clientv3.LeaseID
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kicks  chan struct{} // a renewal is wanted; capacity 1 coalesces
	acks   chan ack

	// mu is a leaf lock, held only to read or change pending.
	mu struct {
		sync.Mutex
		// pending holds the send times of requests not yet answered, oldest
		// first: a stream answers in request order.
		pending []clock.Time
	}
}

// keepAliveStream is the part of etcd's LeaseKeepAlive stream the loop uses.
type keepAliveStream interface {
	Send(*pb.LeaseKeepAliveRequest) error
	Recv() (*pb.LeaseKeepAliveResponse, error)
}

// streamOpener opens a keepalive stream that ends with ctx.
type streamOpener func(ctx context.Context) (keepAliveStream, error)

func openRenewStream(open streamOpener, id clientv3.LeaseID, clk clock.Clock) *renewStream {
	ctx, cancel := context.WithCancel(context.Background())
	st := &renewStream{clk: clk, id: id, cancel: cancel, kicks: make(chan struct{}, 1), acks: make(chan ack, 1)}
	st.wg.Add(1)
	go st.run(ctx, open)
	return st
}

func (st *renewStream) kick() {
	select {
	case st.kicks <- struct{}{}:
	default:
	}
}

func (st *renewStream) oldestPending() (clock.Time, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.mu.pending) == 0 {
		return 0, false
	}
	return st.mu.pending[0], true
}

// close ends the stream and waits for its goroutines. A nil stream is closed.
func (st *renewStream) close() {
	if st == nil {
		return
	}
	st.cancel()
	st.wg.Wait()
}

func (st *renewStream) report(ctx context.Context, a ack) bool {
	select {
	case st.acks <- a:
		return true
	case <-ctx.Done():
		return false
	}
}

// run opens the stream, receives on a second goroutine, and sends a renewal
// for every kick, recording its send time just before the send.
func (st *renewStream) run(ctx context.Context, open streamOpener) {
	defer st.wg.Done()
	stream, err := open(ctx)
	if err != nil {
		st.report(ctx, ack{err: err})
		return
	}
	st.wg.Add(1)
	go st.receive(ctx, stream)
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.kicks:
		}
		st.mu.Lock()
		st.mu.pending = append(st.mu.pending, st.clk.Now())
		st.mu.Unlock()
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(st.id)}); err != nil {
			st.report(ctx, ack{err: err})
			return
		}
	}
}

func (st *renewStream) receive(ctx context.Context, stream keepAliveStream) {
	defer st.wg.Done()
	for {
		resp, err := stream.Recv()
		if err != nil {
			st.report(ctx, ack{err: err})
			return
		}
		st.mu.Lock()
		if len(st.mu.pending) == 0 {
			st.mu.Unlock()
			st.report(ctx, ack{err: errors.New("leases: keepalive answer without a request")})
			return
		}
		sent := st.mu.pending[0]
		st.mu.pending = st.mu.pending[1:]
		st.mu.Unlock()
		if !st.report(ctx, ack{sent: sent, ttl: resp.TTL}) {
			return
		}
	}
}
