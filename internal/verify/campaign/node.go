package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/verify/faults"
	"github.com/leasehold/leasehold/internal/verify/history"
	"github.com/leasehold/leasehold/leases"
)

// Keys of a campaign in etcd. The election uses concurrency.Election's
// layout in both modes (prefix/<lease id in hex>).
const (
	keyRoot     = "/sb/"
	electionKey = "/sb/e"
	fencedKey   = "/sb/d/fenced"
	plainKey    = "/sb/d/plain"
	endKey      = "/sb/end"
)

// nodeConfig is a node process's configuration, passed as flags.
type nodeConfig struct {
	ID          string
	Inc         int
	Mode        string
	Endpoints   []string
	History     string
	TTL         time.Duration
	ActEvery    time.Duration
	WriteEvery  time.Duration
	StubbornFor time.Duration
}

func (c nodeConfig) args() []string {
	return []string{
		"-id", c.ID, "-inc", fmt.Sprint(c.Inc), "-mode", c.Mode,
		"-endpoints", strings.Join(c.Endpoints, ","), "-history", c.History,
		"-ttl", c.TTL.String(), "-act", c.ActEvery.String(), "-write", c.WriteEvery.String(),
		"-stubborn-for", c.StubbornFor.String(),
	}
}

func parseNodeConfig(args []string) (nodeConfig, error) {
	var c nodeConfig
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.StringVar(&c.ID, "id", "", "node id")
	fs.IntVar(&c.Inc, "inc", 1, "incarnation")
	fs.StringVar(&c.Mode, "mode", "leasehold", "leasehold or naive")
	endpoints := fs.String("endpoints", "", "etcd endpoints, comma separated")
	fs.StringVar(&c.History, "history", "", "history file")
	fs.DurationVar(&c.TTL, "ttl", 2*time.Second, "lease TTL")
	fs.DurationVar(&c.ActEvery, "act", 10*time.Millisecond, "time between acts")
	fs.DurationVar(&c.WriteEvery, "write", 50*time.Millisecond, "time between writes")
	fs.DurationVar(&c.StubbornFor, "stubborn-for", 3*time.Second, "how long a stubborn service ignores cancellation")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Endpoints = strings.Split(*endpoints, ",")
	if c.ID == "" || c.History == "" || *endpoints == "" {
		return c, errors.New("node: -id, -history and -endpoints are required")
	}
	return c, nil
}

// node is a node process: it campaigns for leadership and, while it
// believes it leads, acts every ActEvery and writes every WriteEvery,
// recording everything in its history.
type node struct {
	cfg    nodeConfig
	client *clientv3.Client
	hist   *history.Writer
	// stubborn, armed by SIGUSR1 and disarmed by SIGUSR2, makes the acting
	// service ignore the end of its leadership for StubbornFor.
	stubborn atomic.Bool
	seq      atomic.Int64
}

// runNode runs a node process until SIGTERM (exit 0) or a failure.
func runNode(args []string) int {
	faults.ExitWithParent()
	cfg, err := parseNodeConfig(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hist, err := history.Create(cfg.History, history.Event{Node: cfg.ID, Inc: cfg.Inc, PID: os.Getpid(), Mode: cfg.Mode})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer hist.Close()
	_ = hist.Append(history.Event{Kind: history.Start})
	client, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer client.Close()
	n := &node{cfg: cfg, client: client, hist: hist}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	usr := make(chan os.Signal, 4)
	signal.Notify(usr, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range usr {
			n.stubborn.Store(s == syscall.SIGUSR1)
		}
	}()
	fmt.Println("READY")
	switch cfg.Mode {
	case "leasehold":
		err = n.runLeasehold(ctx)
	case "naive":
		err = n.runNaive(ctx)
	default:
		err = fmt.Errorf("node: unknown mode %q", cfg.Mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 1
	}
	return 0
}

// runLeasehold runs a leasehold tree: an election whose single service acts.
func (n *node) runLeasehold(ctx context.Context) error {
	tree := leasehold.Election("leader", electionKey, leasehold.TTL(n.cfg.TTL), leasehold.Identity(fmt.Sprintf("%s.%d", n.cfg.ID, n.cfg.Inc)),
		leasehold.Func("act", n.leaseholdService))
	rt, err := leasehold.New(n.client, tree, leasehold.Options{
		NodeID: n.cfg.ID,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnEvent: func(e leasehold.Event) {
			if e.Kind == leasehold.EventLeaseLost {
				_ = n.hist.Append(history.Event{Kind: history.Lost, Lease: int64(e.LeaseID), Token: e.Token, HeldUntil: int64(e.HeldUntil), Detail: fmt.Sprint(e.Err)})
			}
		},
		// The default policy, recorded first.
		Overrun: func(o leasehold.Overrun) {
			_ = n.hist.Append(history.Event{Kind: history.Overrun, Lease: int64(o.LeaseID), HeldUntil: int64(o.HeldUntil), Detail: strings.Join(o.Stuck, ",")})
			leasehold.ExitOnOverrun(o)
		},
	})
	if err != nil {
		return err
	}
	return rt.Run(ctx)
}

// leaseholdService acts while ctx lives and the lease is certainly held at
// the act's instant (At < HeldUntil), and writes through the term's fence.
func (n *node) leaseholdService(ctx context.Context) error {
	term := leasehold.TermOf(ctx)
	lease := term.Lease()
	base := history.Event{Lease: int64(lease.ID()), Token: term.Token()}
	guard := func(at clock.Time) (bool, int64) {
		held := lease.HeldUntil()
		return at.Before(held), int64(held)
	}
	write := func(wctx context.Context, e history.Event) history.Event {
		e.Fenced = true
		resp, err := term.Txn(wctx).Then(clientv3.OpPut(fencedKey, value(e))).Commit()
		return outcome(e, resp, err)
	}
	// Writes are fenced, not guarded: fencing must reject what a deposed
	// term sends.
	n.lead(ctx, ctx, base, guard, nil, write)
	return nil
}

// runNaive is the usual way: a concurrency.Session and Election, acting
// until Session.Done(); then a new session and a new campaign.
func (n *node) runNaive(ctx context.Context) error {
	ttl := int(n.cfg.TTL / time.Second)
	for ctx.Err() == nil {
		s, err := concurrency.NewSession(n.client, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		e := concurrency.NewElection(s, electionKey)
		if err := e.Campaign(ctx, fmt.Sprintf("%s.%d", n.cfg.ID, n.cfg.Inc)); err != nil {
			closeSession(s)
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.Done():
				cancel()
			case <-lctx.Done():
			}
		}()
		base := history.Event{Lease: int64(s.Lease()), Token: e.Rev()}
		guard := func(clock.Time) (bool, int64) {
			select {
			case <-s.Done():
				return false, 0
			default:
				return true, 0
			}
		}
		leaderKey, token := e.Key(), e.Rev()
		write := func(wctx context.Context, ev history.Event) history.Event {
			// The usual write: a plain Put. Then the same write fenced
			// by hand, to show what fencing would have prevented.
			plain := ev
			resp, err := n.client.Put(wctx, plainKey, value(plain))
			if err == nil {
				plain.Result, plain.Rev = history.Accepted, resp.Header.Revision
			} else {
				plain.Result, plain.Err = history.Unknown, err.Error()
			}
			plain.At = int64(clock.Boot.Now())
			_ = n.hist.Append(plain)
			fenced := ev
			fenced.Fenced = true
			fenced.Sent = int64(clock.Boot.Now())
			tresp, err := n.client.Txn(wctx).If(leases.Fence(leaderKey, token)).Then(clientv3.OpPut(fencedKey, value(fenced))).Commit()
			if err == nil && !tresp.Succeeded {
				err = leases.ErrFenced
			}
			var r *clientv3.TxnResponse
			if err == nil {
				r = tresp
			}
			return outcome(fenced, r, err)
		}
		// Writes are not cancelled when the session ends: the usual
		// leader checks Session.Done() before it writes, not during.
		n.lead(lctx, ctx, base, guard, guard, write)
		cancel()
		if ctx.Err() != nil {
			rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
			_ = e.Resign(rctx)
			rcancel()
		}
		closeSession(s)
	}
	return nil
}

func closeSession(s *concurrency.Session) {
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Close() }()
	select {
	case <-done:
	case <-time.After(time.Second):
		s.Orphan()
	}
}

// lead records the term's acquisition and acts every ActEvery while ctx
// lives and guard allows, with a writer alongside (checking writeGuard, if
// any, before each write) whose requests run under writeCtx; it returns
// once both have stopped. A stubborn node ignores the end of ctx for StubbornFor,
// acting unguarded, as a service that refuses to stop would.
func (n *node) lead(ctx, writeCtx context.Context, base history.Event, guard, writeGuard func(clock.Time) (bool, int64), write func(context.Context, history.Event) history.Event) {
	base.Node, base.Inc = n.cfg.ID, n.cfg.Inc
	var stubbornUntil atomic.Int64 // clock.Time; 0: not being stubborn
	var mu sync.Mutex
	// over reports whether acting must end: ctx has ended and the node is
	// not (or no longer) being stubborn. The first time ctx is seen ended
	// with stubbornness armed, the stubborn period starts.
	over := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() == nil {
			return false
		}
		if until := stubbornUntil.Load(); until != 0 {
			return clock.Boot.Now().After(clock.Time(until))
		}
		if n.stubborn.CompareAndSwap(true, false) {
			stubbornUntil.Store(int64(clock.Boot.Now().Add(n.cfg.StubbornFor)))
			return false
		}
		return true
	}
	// next waits for t's next tick, or for the end of ctx unless the node
	// is being stubborn (then it keeps the pace).
	next := func(t *time.Ticker) {
		select {
		case <-t.C:
		case <-ctx.Done():
			if stubbornUntil.Load() != 0 {
				<-t.C
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(n.cfg.WriteEvery)
		defer t.Stop()
		for !over() {
			if writeGuard != nil && stubbornUntil.Load() == 0 {
				if ok, _ := writeGuard(clock.Boot.Now()); !ok {
					sleepCtx(ctx, n.cfg.WriteEvery)
					continue
				}
			}
			wctx, cancel := context.WithTimeout(writeCtx, time.Second)
			if stubbornUntil.Load() != 0 {
				wctx, cancel = context.WithTimeout(context.WithoutCancel(writeCtx), time.Second)
			}
			e := base
			e.Kind, e.Seq, e.Sent = history.Write, n.seq.Add(1), int64(clock.Boot.Now())
			e = write(wctx, e)
			cancel()
			_ = n.hist.Append(e)
			next(t)
		}
	})
	acquired, refused := false, false
	t := time.NewTicker(n.cfg.ActEvery)
	defer t.Stop()
	for !over() {
		at := clock.Boot.Now()
		ok, held := guard(at)
		e := base
		e.At, e.HeldUntil = int64(at), held
		switch {
		case !ok && stubbornUntil.Load() == 0:
			if !refused {
				e.Kind = history.Refused
				_ = n.hist.Append(e)
				refused = true
			}
		default:
			if !acquired {
				e.Kind = history.Acquired
				_ = n.hist.Append(e)
				acquired = true
			}
			e.Kind = history.Act
			if stubbornUntil.Load() != 0 {
				e.Detail = "stubborn"
			}
			_ = n.hist.Append(e)
		}
		next(t)
	}
	wg.Wait()
	e := base
	e.Kind = history.Stopped
	_ = n.hist.Append(e)
}

// value is what a write puts: enough for the checker to attribute the
// commit it finds in etcd's record to its term.
func value(e history.Event) string {
	b, _ := json.Marshal(writeValue{Node: e.Node, Inc: e.Inc, Lease: e.Lease, Token: e.Token, Seq: e.Seq, Fenced: e.Fenced})
	return string(b)
}

type writeValue struct {
	Node   string `json:"n"`
	Inc    int    `json:"i"`
	Lease  int64  `json:"l"`
	Token  int64  `json:"t"`
	Seq    int64  `json:"s"`
	Fenced bool   `json:"f"`
}

func outcome(e history.Event, resp *clientv3.TxnResponse, err error) history.Event {
	e.At = int64(clock.Boot.Now())
	switch {
	case err == nil:
		e.Result, e.Rev = history.Accepted, resp.Header.Revision
	case errors.Is(err, leases.ErrFenced):
		e.Result = history.Rejected
	default:
		e.Result, e.Err = history.Unknown, err.Error()
	}
	return e
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
