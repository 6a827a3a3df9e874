package leases

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/leasehold/leasehold/clock"
)

// These tests drive the keepalive loop on a fake clock over fake streams:
// no etcd, no sleeps. The loop's goroutines are real; every wait is for
// something the loop does (a send, an ack processed, a stream opened, the
// lease lost).

const waitLimit = 10 * time.Second

// fakeStream is one keepalive stream: the test sees each request on sends
// and answers it on answers.
type fakeStream struct {
	ctx     context.Context
	sends   chan struct{}
	answers chan *pb.LeaseKeepAliveResponse
}

func (s *fakeStream) Send(*pb.LeaseKeepAliveRequest) error {
	select {
	case s.sends <- struct{}{}:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *fakeStream) Recv() (*pb.LeaseKeepAliveResponse, error) {
	select {
	case r := <-s.answers:
		if r == nil {
			return nil, io.EOF
		}
		return r, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

type harness struct {
	t       *testing.T
	clk     *clock.Fake
	l       *Lease
	opened  chan *fakeStream
	acked   chan struct{}
	stalled chan struct{}
	granted clock.Time
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, clk: clock.NewFake(), opened: make(chan *fakeStream, 8), acked: make(chan struct{}, 8), stalled: make(chan struct{}, 8)}
	cfg.Clock = h.clk
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h.granted = h.clk.Now()
	open := func(ctx context.Context) (keepAliveStream, error) {
		s := &fakeStream{ctx: ctx, sends: make(chan struct{}), answers: make(chan *pb.LeaseKeepAliveResponse, 1)}
		h.opened <- s
		return s, nil
	}
	h.l = newLease(cfg, 1, cfg.TTL, h.granted, open)
	h.l.trace = func(step string) {
		switch step {
		case "ack":
			h.acked <- struct{}{}
		case "replaced":
			h.stalled <- struct{}{}
		}
	}
	h.l.start(h.granted)
	t.Cleanup(h.l.Close)
	return h
}

func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s within %s", what, waitLimit)
		panic("unreachable")
	}
}

// renew answers the stream's next request with the lease's TTL and waits
// until the loop has processed the answer.
func (h *harness) renew(s *fakeStream) {
	h.t.Helper()
	await(h.t, "renewal request", s.sends)
	s.answers <- &pb.LeaseKeepAliveResponse{ID: 1, TTL: int64(h.l.TTL() / time.Second)}
	await(h.t, "ack processed", h.acked)
}

func TestKeepaliveMovesHeldUntilToSendTimePlusHeldTTL(t *testing.T) {
	h := newHarness(t, Config{TTL: 3 * time.Second})
	held := heldFor(h.l.TTL(), h.l.cfg.Rho, h.l.cfg.Guard)
	s := await(t, "stream", h.opened)
	h.renew(s) // sent at grant time: no move
	if got, want := h.l.HeldUntil(), h.granted.Add(held); got != want {
		t.Fatalf("HeldUntil = %v; want grant + held %v", got, want)
	}
	h.clk.Advance(h.l.cfg.RenewInterval)
	sentAt := h.clk.Now()
	h.renew(s)
	if got, want := h.l.HeldUntil(), sentAt.Add(held); got != want {
		t.Errorf("HeldUntil = %v; want send time + held %v", got, want)
	}
	if h.l.Err() != nil {
		t.Errorf("lease lost while renewed: %v", h.l.Err())
	}
}

func TestKeepaliveFencesAtFenceAtWithoutAcks(t *testing.T) {
	h := newHarness(t, Config{TTL: 3 * time.Second})
	s := await(t, "stream", h.opened)
	h.renew(s)
	fenceAt := h.l.FenceAt()
	// From now on nothing is answered: the loop replaces stalled streams
	// and, at FenceAt, gives the lease up.
	h.clk.Set(fenceAt)
	await(t, "lease lost", h.l.Done())
	if !errors.Is(h.l.Err(), ErrExpired) {
		t.Errorf("Err = %v; want ErrExpired", h.l.Err())
	}
	if got := h.l.FenceAt(); got != fenceAt {
		t.Errorf("FenceAt moved to %v after the loss; want %v", got, fenceAt)
	}
}

func TestKeepaliveReplacesAStalledStream(t *testing.T) {
	h := newHarness(t, Config{TTL: 3 * time.Second})
	s := await(t, "stream", h.opened)
	h.renew(s)
	h.clk.Advance(h.l.cfg.RenewInterval)
	await(t, "renewal request", s.sends) // never answered
	h.clk.Advance(h.l.cfg.RenewInterval / 2)
	await(t, "stalled stream replaced", h.stalled)
	h.clk.Advance(minStreamGap)
	next := await(t, "replacement stream", h.opened)
	h.renew(next)
	if h.l.Failures() != 1 {
		t.Errorf("Failures = %d; want 1 stalled stream", h.l.Failures())
	}
	if h.l.Err() != nil {
		t.Errorf("lease lost although the replacement renewed it: %v", h.l.Err())
	}
}

// Regression (issue 10, item 8): an ack buffered while the renew timer
// fired used to stop the stall timer although the new request was still
// unanswered, so a blackholed renewal was never replaced.
func TestStallWatchKeepsWatchingARequestAskedForBeforeAnOlderAck(t *testing.T) {
	w := stallWatch{after: time.Second}
	at := clock.Time(100 * time.Second)
	w.kicked(at.Add(-3 * time.Second))
	w.acked(at.Add(-3 * time.Second)) // the previous renewal, answered
	w.kicked(at)                      // renew fires; the sender has not recorded it yet
	w.acked(at.Add(-time.Second))     // a buffered ack of an older request arrives
	if got, want := w.due(0, false), at.Add(time.Second); got != want {
		t.Errorf("due = %v; want %v (kick time + after): the new request went unwatched", got, want)
	}
	w.acked(at) // its answer
	if got := w.due(0, false); got != never {
		t.Errorf("due = %v after every request was answered; want never", got)
	}
	if got, want := w.due(at.Add(time.Second), true), at.Add(2*time.Second); got != want {
		t.Errorf("due = %v; want oldest pending + after %v", got, want)
	}
}
