package leasehold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/clock"
)

// Options configure a Runtime. Zero fields take their documented defaults.
type Options struct {
	// NodeID identifies this process: the default election identity and the
	// node field of snapshots. Default: hostname-pid.
	NodeID string
	// Logger receives the runtime's logs. Default: slog.Default(). Its
	// handler runs on the same goroutine as OnEvent, so a blocked log writer
	// never delays a teardown; past 4096 queued records, records are dropped
	// and the drop is logged once the writer moves again.
	Logger *slog.Logger
	// Overrun is applied when services outlive their lease's HeldUntil.
	// Default: ExitOnOverrun.
	Overrun OverrunPolicy
	// OnEvent, if set, receives every Event (see Event for the contract). It
	// runs on a goroutine of the runtime's own, never under its locks: it
	// may call anything on the Runtime, and a slow handler delays only the
	// events after it, never the tree.
	OnEvent func(Event)
	// Clock measures lease deadlines. Default: clock.Boot.
	Clock clock.Clock
	// Reacquire paces new terms after a lease is lost and retries of a
	// failed grant. Default: 100ms doubling to 1s, so that a node holds its
	// leases again within about a second of etcd becoming reachable. A term
	// that lasted longer than Max starts the backoff over.
	Reacquire BackoffRange
	// GrantTimeout bounds one attempt to grant a lease, so that an
	// unreachable etcd turns into logged retries rather than a silent hang.
	// Default: 2s.
	GrantTimeout time.Duration
}

// ErrAlreadyRun is returned by Run on a Runtime that has been run before.
var ErrAlreadyRun = errors.New("leasehold: a Runtime runs only once")

// Runtime runs one tree. Create it with New, start it with Run, and read its
// live state with Snapshot at any time.
type Runtime struct {
	client *clientv3.Client
	opts   Options
	log    *slog.Logger
	root   *node

	started atomic.Bool
	// inflight counts every Serve call of every node that has not returned,
	// and every goroutine the runtime started (revokes, watchdogs).
	inflight sync.WaitGroup
	// out delivers events and logs to user code.
	out *outbox

	// mu is a leaf lock: nothing else is taken while it is held.
	mu struct {
		sync.Mutex
		fatal  error // the first error that ends the whole run
		cancel context.CancelCauseFunc
	}
}

// New validates tree and prepares to run it on client. Nothing starts
// until Run. Every setting is resolved here, once.
func New(client *clientv3.Client, tree *Node, opts Options) (*Runtime, error) {
	root, err := tree.built()
	if err != nil {
		return nil, err
	}
	if err := validateTree(root); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("%w: the etcd client is nil: pass a connected *clientv3.Client", ErrInvalidTree)
	}
	if opts.NodeID == "" {
		host, _ := os.Hostname()
		opts.NodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Overrun == nil {
		opts.Overrun = ExitOnOverrun
	}
	if opts.Clock == nil {
		opts.Clock = clock.Boot
	}
	if opts.Reacquire == (BackoffRange{}) {
		opts.Reacquire = BackoffRange{Min: 100 * time.Millisecond, Max: time.Second}
	}
	opts.Reacquire = opts.Reacquire.WithDefaults()
	if opts.GrantTimeout <= 0 {
		opts.GrantTimeout = 2 * time.Second
	}
	r := &Runtime{client: client, opts: opts, out: newOutbox(opts.OnEvent)}
	r.log = slog.New(asyncHandler{inner: opts.Logger.Handler(), out: r.out})
	r.root = r.build(resolved(root, opts.Clock), nil)
	return r, nil
}

// Run validates tree, runs it on client until ctx ends, and returns only
// after everything it started has returned: nil after a stop through ctx,
// or the error that ended the tree. It is New with zero Options, then
// Runtime.Run.
func Run(ctx context.Context, client *clientv3.Client, tree *Node) error {
	rt, err := New(client, tree, Options{})
	if err != nil {
		return err
	}
	return rt.Run(ctx)
}

// NodeID is the runtime's node identity.
func (r *Runtime) NodeID() string { return r.opts.NodeID }

// Run runs the tree until ctx ends or a fatal error occurs, then stops it,
// and returns only after every service it started has returned. It returns
// nil after a stop through ctx, else the fatal error.
func (r *Runtime) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.mu.Lock()
	r.mu.cancel = cancel
	r.mu.Unlock()

	r.out.start()
	r.root.serveRoot(ctx)
	r.inflight.Wait()
	r.out.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.fatal
}

// fail ends the whole run with err (the first such error wins).
func (r *Runtime) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.fatal == nil {
		r.mu.fatal = err
		r.log.Error("stopping the tree", "err", err)
	}
	if r.mu.cancel != nil {
		r.mu.cancel(err)
	}
}

// emit stamps e and queues it for OnEvent; it never waits for the handler.
func (r *Runtime) emit(e Event) {
	if r.opts.OnEvent == nil {
		return
	}
	if e.At == 0 {
		e.At = r.opts.Clock.Now()
	}
	r.out.post(delivery{event: e})
}

// background runs f on a goroutine that Run waits for.
func (r *Runtime) background(f func()) {
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		f()
	}()
}

// sleep waits for d on the runtime's clock, or until stop is closed.
func (r *Runtime) sleep(d time.Duration, stop <-chan struct{}) {
	clock.Sleep(r.opts.Clock, d, stop, nil)
}
