package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/otp"
)

// The engine's tests run without etcd: fake Members and a fake Host, inside
// a synctest bubble so that "nothing else happens" can be asserted after
// synctest.Wait, and time (suture's, and the bubble clock's) is fake.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what happens to a group's members and host, in order.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// index is the position of the first entry e, or -1.
func (j *journal) index(e string) int { return slices.Index(j.all(), e) }

// fakeMember is a Member whose Run is a func given its run number (from 1);
// it journals its hooks as "<name> <hook>".
type fakeMember struct {
	name    string
	rules   otp.ChildRules
	subtree bool
	run     func(ctx context.Context, n int) error
	j       *journal

	mu        sync.Mutex
	runs      int
	started   int
	startedAt []clock.Time
	ends      []End
	finished  []error
}

var _ Member = (*fakeMember)(nil)

// member makes a fake member journaling into j; a nil run waits for its
// context and returns nil.
func member(j *journal, name string, rules otp.ChildRules, run func(ctx context.Context, n int) error) *fakeMember {
	if run == nil {
		run = untilStopped
	}
	return &fakeMember{name: name, rules: rules, run: run, j: j}
}

func untilStopped(ctx context.Context, _ int) error { <-ctx.Done(); return nil }

func (m *fakeMember) Name() string           { return m.name }
func (m *fakeMember) String() string         { return "g/" + m.name }
func (m *fakeMember) Rules() *otp.ChildRules { return &m.rules }
func (m *fakeMember) Subtree() bool          { return m.subtree }

func (m *fakeMember) Run(ctx context.Context) error {
	m.mu.Lock()
	m.runs++
	n := m.runs
	m.mu.Unlock()
	return m.run(ctx, n)
}

func (m *fakeMember) BackingOff() { m.j.add("%s backoff", m.name) }

func (m *fakeMember) Started(at clock.Time) {
	m.mu.Lock()
	m.started++
	m.startedAt = append(m.startedAt, at)
	m.mu.Unlock()
	m.j.add("%s started", m.name)
}

func (m *fakeMember) Stopping() { m.j.add("%s stopping", m.name) }

func (m *fakeMember) Ended(e End) {
	m.mu.Lock()
	m.ends = append(m.ends, e)
	m.mu.Unlock()
	m.j.add("%s ended", m.name)
}

func (m *fakeMember) Finished(failure error) {
	m.mu.Lock()
	m.finished = append(m.finished, failure)
	m.mu.Unlock()
	m.j.add("%s finished", m.name)
}

// Runs is the number of times Run was called; Starts, of Started.
func (m *fakeMember) Runs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs
}

func (m *fakeMember) Starts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started
}

func (m *fakeMember) StartedAt() []clock.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.startedAt)
}

func (m *fakeMember) Ends() []End {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ends)
}

func (m *fakeMember) Finishes() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.finished)
}

// overrun is one ShutdownOverrun call: the member and the host's clock.
type overrun struct {
	m  Member
	at clock.Time
}

// fakeHost is a Host that records its calls. It allows starts until forbid
// is called; its Overdue channel closes on closeOverdue.
type fakeHost struct {
	clk     clock.Clock
	j       *journal
	overdue chan struct{}
	wg      sync.WaitGroup
	// stopGate, if set, holds the group's teardown back (in Run's onStop)
	// until it is closed.
	stopGate chan struct{}

	mu        sync.Mutex
	forbidden bool
	overruns  []overrun
	escalated []error
	paused    []time.Duration
	removed   []Member
}

var _ Host = (*fakeHost)(nil)

func newHost(clk clock.Clock, j *journal) *fakeHost {
	return &fakeHost{clk: clk, j: j, overdue: make(chan struct{})}
}

func (h *fakeHost) forbid() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forbidden = true
}

func (h *fakeHost) MayStart(clock.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.forbidden
}

func (h *fakeHost) Overdue() <-chan struct{} { return h.overdue }

func (h *fakeHost) ShutdownOverrun(m Member) {
	h.mu.Lock()
	h.overruns = append(h.overruns, overrun{m, h.clk.Now()})
	h.mu.Unlock()
	h.j.add("host overrun %s", m.Name())
}

func (h *fakeHost) Escalated(reason error) {
	h.mu.Lock()
	h.escalated = append(h.escalated, reason)
	h.mu.Unlock()
	h.j.add("host escalated")
}

func (h *fakeHost) Paused(d time.Duration) {
	h.mu.Lock()
	h.paused = append(h.paused, d)
	h.mu.Unlock()
	h.j.add("host paused")
}

func (h *fakeHost) Removed(m Member) {
	h.mu.Lock()
	h.removed = append(h.removed, m)
	h.mu.Unlock()
	h.j.add("host removed %s", m.Name())
}

func (h *fakeHost) Go(f func()) {
	h.wg.Go(f)
}

func (h *fakeHost) Overruns() []overrun {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.overruns)
}

func (h *fakeHost) Escalations() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.escalated)
}

func (h *fakeHost) Pauses() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.paused)
}

func (h *fakeHost) Removals() []Member {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.removed)
}

// running is a group whose Run goes on in the background.
type running struct {
	g      *Children
	cancel context.CancelFunc
	ended  chan struct{} // closed once Run has returned err
	err    error
}

// start runs members as one group under host, on clk, inside t's synctest
// bubble. The group is stopped, and awaited, when the test ends.
func start(t *testing.T, clk clock.Clock, rules otp.GroupRules, host *fakeHost, members ...*fakeMember) *running {
	ms := make([]Member, len(members))
	for i, m := range members {
		ms[i] = m
	}
	g := NewChildren(Config{Name: "g", Rules: &rules, Clock: clk, Log: discard, Values: context.Background()}, host, ms)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{g: g, cancel: cancel, ended: make(chan struct{})}
	go func() {
		r.err = g.Run(ctx, func(cause error) {
			host.j.add("group stopping")
			if host.stopGate != nil {
				<-host.stopGate
			}
		})
		close(r.ended)
		host.wg.Wait()
	}()
	// On a failed assertion too: a bubble must end with no goroutine left.
	t.Cleanup(func() { r.cancel(); r.wait() })
	return r
}

// wait returns Run's result once it has returned.
func (r *running) wait() error {
	<-r.ended
	return r.err
}

// stop ends the group and returns Run's result.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}

// returned reports whether Run has returned, without waiting.
func (r *running) returned() bool {
	select {
	case <-r.ended:
		return true
	default:
		return false
	}
}

// bubbleClock is a clock.Clock on Go's time, which inside a synctest bubble
// is the bubble's: it advances by itself once every goroutine is blocked,
// so backoffs and intensity periods pass at once yet in order.
type bubbleClock struct{ origin time.Time }

func newBubbleClock() bubbleClock { return bubbleClock{origin: time.Now()} }

func (c bubbleClock) Now() clock.Time { return clock.Time(time.Hour + time.Since(c.origin)) }

func (c bubbleClock) NewTimer(at clock.Time) clock.Timer {
	t := &bubbleTimer{clk: c, c: make(chan struct{}, 1)}
	t.Reset(at)
	return t
}

type bubbleTimer struct {
	clk bubbleClock
	c   chan struct{}

	mu      sync.Mutex
	t       *time.Timer
	gen     int // the current arming; a fire of an older one is dropped
	stopped bool
}

func (t *bubbleTimer) C() <-chan struct{} { return t.c }

func (t *bubbleTimer) Reset(at clock.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.disarm()
	gen := t.gen
	t.t = time.AfterFunc(at.Sub(t.clk.Now()), func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.gen == gen && !t.stopped {
			select {
			case t.c <- struct{}{}:
			default:
			}
		}
	})
}

func (t *bubbleTimer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.disarm()
}

// disarm drops the current arming and a fire not yet received; t.mu held.
func (t *bubbleTimer) disarm() {
	t.gen++
	if t.t != nil {
		t.t.Stop()
	}
	select {
	case <-t.c:
	default:
	}
}

var discard = slog.New(slog.DiscardHandler)

// settle lets d of the bubble's fake time pass, then waits until every
// goroutine of the bubble is blocked again. Inside a bubble time.Sleep is
// not a wait on the machine's time: it advances the fake clock by exactly
// d, firing every timer due on the way, in order.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// gate is a channel a member blocks on, opened at most once. Tests defer
// open too, so that a failed assertion leaves no member blocked (deferred
// calls run before the group's cleanup stops it and waits).
type gate struct {
	c    chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{c: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.c) }) }
