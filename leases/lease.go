package leases

import (
	"context"
	"errors"
	"fmt"
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

	heldUntil atomic.Int64 // clock.Time; only grows
	renewals  atomic.Int64
	failures  atomic.Int64

	ctx    context.Context
	cancel context.CancelCauseFunc

	stopOnce sync.Once
	stop     chan struct{} // closed to end the keepalive loop
	done     chan struct{} // closed when the keepalive loop has returned
}

// Grant grants a lease of cfg.TTL and starts renewing it. It fails with an
// error wrapping ErrInvalidConfig for a bad cfg, and with ErrTTLRaised when
// etcd granted a different TTL (the request is below the cluster's minimum).
func Grant(ctx context.Context, c *clientv3.Client, cfg Config) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
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
	l := &Lease{
		client: c,
		cfg:    cfg,
		id:     resp.ID,
		ttl:    granted,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	l.heldUntil.Store(int64(sent.Add(heldFor(granted, cfg.Rho, cfg.Guard))))
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	go l.keepalive(sent)
	return l, nil
}

// ID is the etcd lease ID.
func (l *Lease) ID() clientv3.LeaseID { return l.id }

// TTL is the TTL etcd granted.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Config is the lease's configuration, defaults applied.
func (l *Lease) Config() Config { return l.cfg }

// HeldUntil is the instant until which the lease is certainly held in etcd,
// given clock drift below Config.Rho. It only moves later, and stops moving
// once the lease is lost.
func (l *Lease) HeldUntil() clock.Time { return clock.Time(l.heldUntil.Load()) }

// FenceAt is the instant at which the lease is declared lost locally if no
// later renewal has been acknowledged: HeldUntil minus the stop budget.
func (l *Lease) FenceAt() clock.Time { return l.HeldUntil().Add(-l.cfg.StopBudget) }

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

// keepalive owns the renewal stream and the fence timer. Renewals go out every
// RenewInterval; a broken or stalled stream is replaced at once; every
// acknowledged renewal moves HeldUntil to its send time plus the held TTL.
func (l *Lease) keepalive(granted clock.Time) {
	defer close(l.done)
	clk := l.cfg.Clock
	fence := clk.NewTimer(l.FenceAt())
	defer fence.Stop()
	renew := time.NewTimer(l.cfg.RenewInterval - clk.Now().Sub(granted))
	defer renew.Stop()

	// A renewal unanswered for stallAfter means the stream is stuck (for
	// example blackholed); it is replaced and the renewal retried at once.
	stallAfter := l.cfg.RenewInterval / 2
	stall := time.NewTimer(stallAfter)
	stall.Stop()
	defer stall.Stop()

	// st is nil between a broken stream and its replacement; acks is then
	// nil too, so the loop waits on the fence and the reopen timer alone.
	var st *renewStream
	var acks <-chan ack
	defer func() { st.close() }()
	reopen := time.NewTimer(0) // the first stream opens at once
	defer reopen.Stop()
	replace := func() {
		l.failures.Add(1)
		st.close()
		st, acks = nil, nil
		stall.Stop()
		// Pace replacement so an instantly failing stream cannot spin.
		reopen.Reset(minStreamGap)
	}
	for {
		select {
		case <-l.stop:
			return
		case <-fence.C():
			if l.fenced(fence) {
				return
			}
		case <-reopen.C:
			st = openRenewStream(l.client, l.id, clk)
			acks = st.acks
			st.kick() // a new stream renews at once
			stall.Reset(stallAfter)
		case <-renew.C:
			renew.Reset(l.cfg.RenewInterval)
			if st == nil {
				continue // the next stream renews as it opens
			}
			if _, waiting := st.oldestPending(); !waiting {
				stall.Reset(stallAfter)
			}
			st.kick()
		case <-stall.C:
			if st == nil {
				continue // armed only with a stream; stopped when it is replaced
			}
			if oldest, ok := st.oldestPending(); ok {
				if age := clk.Now().Sub(oldest); age < stallAfter {
					stall.Reset(stallAfter - age)
					continue
				}
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
			if _, waiting := st.oldestPending(); !waiting {
				stall.Stop()
			}
			until := a.sent.Add(heldFor(time.Duration(a.ttl)*time.Second, l.cfg.Rho, l.cfg.Guard))
			if until.After(l.HeldUntil()) {
				l.heldUntil.Store(int64(until))
				fence.Reset(l.FenceAt())
			}
		}
	}
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

	mu struct {
		sync.Mutex
		// pending holds the send times of requests not yet answered, oldest
		// first: a stream answers in request order.
		pending []clock.Time
	}
}

func openRenewStream(c *clientv3.Client, id clientv3.LeaseID, clk clock.Clock) *renewStream {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	st := &renewStream{clk: clk, id: id, cancel: cancel, kicks: make(chan struct{}, 1), acks: make(chan ack, 1)}
	st.wg.Add(1)
	go st.run(ctx, pb.NewLeaseClient(c.ActiveConnection()))
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
func (st *renewStream) run(ctx context.Context, lc pb.LeaseClient) {
	defer st.wg.Done()
	stream, err := lc.LeaseKeepAlive(ctx)
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

func (st *renewStream) receive(ctx context.Context, stream pb.Lease_LeaseKeepAliveClient) {
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
