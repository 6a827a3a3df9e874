package leasehold_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"pgregory.net/rapid"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/internal/verify/faults"
)

// The model, checked on generated trees (docs/verification.md): rapid
// generates a tree (nested leases, elections and supervisors up to depth 4,
// every strategy and restart type, Ordered groups, dynamic children added
// and removed at random moments, services with random stop latencies within
// their Shutdown, a few that ignore cancellation) and a fault schedule
// (partition and heal, revoke or election-key deletion from a second client,
// a blocking OnEvent handler; Snapshot from every handler call; Run
// cancelled), runs it against real embedded etcd, and checks I1–I6 from
// facts the runtime cannot fake: the instants each Serve began and returned
// (taken by a wrapper on clock.Boot), the events, and lease-bound marker
// keys seen deleted by a second client.
//
// LEASEHOLD_PROPERTY_N sets the number of cases (default 12; the long run
// quoted in the docs used more).

const (
	propTTL       = 2 * time.Second
	propBudget    = propTTL / 3 // the default StopBudget
	propCaseSpan  = 2500 * time.Millisecond
	propStubborn  = 2500 * time.Millisecond // how long a stubborn service ignores its stop
	propRunReturn = 45 * time.Second        // a bound on Run's return once cancelled
)

func TestPropertyInvariantsOnGeneratedTrees(t *testing.T) {
	n := 12
	if s := os.Getenv("LEASEHOLD_PROPERTY_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("LEASEHOLD_PROPERTY_N=%q: want a positive number of cases", s)
		}
		n = v
	}
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == "100" {
		_ = f.Value.Set(strconv.Itoa(n))
	}
	if f := flag.Lookup("rapid.shrinktime"); f != nil {
		_ = f.Value.Set("20s") // real time makes shrinking a hint only
	}
	srv := etcdtest.Start(t)
	direct := srv.Client(t)
	var stats propStats
	began := time.Now()
	rapid.Check(t, func(rt *rapid.T) { runPropertyCase(rt, srv, direct, &stats) })
	t.Logf("property: %d cases, %d services, %d faults injected, %d overruns (only in trees with a stubborn service), 0 violations, %s",
		stats.cases.Load(), stats.services.Load(), stats.faults.Load(), stats.overruns.Load(), time.Since(began).Round(time.Second))
}

type propStats struct{ cases, services, faults, overruns atomic.Int64 }

// gen is one generated node.
type gen struct {
	kind     leasehold.Kind
	name     string
	children []*gen
	strategy leasehold.RestartStrategy
	ordered  bool
	restart  leasehold.RestartType
	shutdown time.Duration
	// services
	latency  time.Duration // to stop once asked
	crashIn  time.Duration // fails on its own after this long; 0: never
	stubborn bool          // ignores its stop for propStubborn
	manager  []dynAction   // adds and removes dynamic siblings
}

type dynAction struct {
	at     time.Duration
	remove bool
	name   string
	wait   time.Duration // Remove's own timeout: it may give up first
}

func (g *gen) String() string {
	var b strings.Builder
	var walk func(n *gen, depth int)
	walk = func(n *gen, depth int) {
		fmt.Fprintf(&b, "%s%s %s", strings.Repeat("  ", depth), n.kind, n.name)
		if n.kind != leasehold.KindService {
			fmt.Fprintf(&b, " strategy=%s ordered=%v", n.strategy, n.ordered)
		}
		fmt.Fprintf(&b, " restart=%s shutdown=%s", n.restart, n.shutdown)
		if n.kind == leasehold.KindService {
			fmt.Fprintf(&b, " latency=%s crashIn=%s stubborn=%v dyn=%v", n.latency, n.crashIn, n.stubborn, n.manager)
		}
		b.WriteString("\n")
		for _, c := range n.children {
			walk(c, depth+1)
		}
	}
	walk(g, 0)
	return b.String()
}

func genTree(t *rapid.T, kind leasehold.Kind, name string, depth int) *gen {
	g := &gen{kind: kind, name: name,
		restart: rapid.SampledFrom([]leasehold.RestartType{leasehold.Permanent, leasehold.Transient, leasehold.Temporary}).Draw(t, name+".restart")}
	if kind == leasehold.KindService {
		g.shutdown = rapid.SampledFrom([]time.Duration{0, 60 * time.Millisecond, 120 * time.Millisecond}).Draw(t, name+".shutdown")
		if g.shutdown > 0 {
			g.latency = time.Duration(rapid.Int64Range(0, int64(g.shutdown/2)).Draw(t, name+".latency"))
		} else {
			g.latency = time.Duration(rapid.Int64Range(0, int64(10*time.Millisecond)).Draw(t, name+".latency"))
		}
		if rapid.IntRange(0, 5).Draw(t, name+".crashy") == 0 {
			g.crashIn = time.Duration(rapid.Int64Range(int64(50*time.Millisecond), int64(800*time.Millisecond)).Draw(t, name+".crashIn"))
		}
		g.stubborn = rapid.IntRange(0, 19).Draw(t, name+".stubborn") == 0
		if rapid.IntRange(0, 3).Draw(t, name+".manager") == 0 {
			for i := range rapid.IntRange(1, 5).Draw(t, name+".actions") {
				g.manager = append(g.manager, dynAction{
					at:     time.Duration(rapid.Int64Range(0, int64(propCaseSpan)).Draw(t, name+".at")),
					remove: rapid.Bool().Draw(t, name+".remove"),
					name:   "dyn" + strconv.Itoa(rapid.IntRange(0, 2).Draw(t, name+".dyn")),
					wait:   time.Duration(rapid.Int64Range(0, int64(100*time.Millisecond)).Draw(t, name+".wait")),
				})
				_ = i
			}
			slices.SortFunc(g.manager, func(a, b dynAction) int { return int(a.at - b.at) })
		}
		return g
	}
	g.strategy = rapid.SampledFrom([]leasehold.RestartStrategy{leasehold.OneForOne, leasehold.OneForAll, leasehold.RestForOne}).Draw(t, name+".strategy")
	g.ordered = rapid.IntRange(0, 3).Draw(t, name+".ordered") == 0
	kinds := []leasehold.Kind{leasehold.KindService}
	if depth < 3 {
		kinds = append(kinds, leasehold.KindService, leasehold.KindService, leasehold.KindSupervisor, leasehold.KindLease, leasehold.KindElection)
	}
	for i := range rapid.IntRange(1, 3).Draw(t, name+".children") {
		k := rapid.SampledFrom(kinds).Draw(t, fmt.Sprintf("%s.%d.kind", name, i))
		g.children = append(g.children, genTree(t, k, fmt.Sprintf("%s%d", string(k[0]), i), depth+1))
	}
	return g
}

// propCase is one running case.
type propCase struct {
	prefix string
	kinds  map[string]leasehold.Kind // every declared node by path

	mu   sync.Mutex
	runs []propRun
}

type propRun struct {
	path       string
	start, end clock.Time
}

func (c *propCase) begin(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs = append(c.runs, propRun{path: path, start: clock.Boot.Now()})
	return len(c.runs) - 1
}

func (c *propCase) end(i int) {
	at := clock.Boot.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[i].end = at
}

func (c *propCase) service(path string, g *gen) func(context.Context) error {
	return func(ctx context.Context) error {
		i := c.begin(path)
		defer c.end(i)
		var crash <-chan time.Time
		if g.crashIn > 0 {
			tm := time.NewTimer(g.crashIn)
			defer tm.Stop()
			crash = tm.C
		}
		if len(g.manager) > 0 {
			c.manage(ctx, path, g)
		}
		select {
		case <-ctx.Done():
		case <-crash:
			return errors.New("generated crash")
		}
		if g.stubborn {
			time.Sleep(propStubborn) // ignores its stop: the overrun policy's case
		}
		time.Sleep(g.latency) // the work of stopping, within its Shutdown
		return nil
	}
}

// manage adds and removes dynamic siblings at the generated moments.
func (c *propCase) manage(ctx context.Context, path string, g *gen) {
	group := leasehold.GroupOf(ctx)
	parent := path[:strings.LastIndex(path, "/")]
	began := time.Now()
	for _, a := range g.manager {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(began.Add(a.at))):
		}
		if a.remove {
			rctx, cancel := context.WithTimeout(ctx, a.wait)
			_ = group.Remove(rctx, a.name)
			cancel()
			continue
		}
		dyn := &gen{kind: leasehold.KindService, latency: a.wait / 10}
		_ = group.Add(leasehold.Func(a.name, c.service(parent+"/"+a.name, dyn)))
	}
}

func (c *propCase) build(g *gen, parent string) *leasehold.Node {
	path := g.name
	if parent != "" {
		path = parent + "/" + g.name
	}
	c.kinds[path] = g.kind
	parts := []leasehold.Part{leasehold.Restart(g.restart)}
	if g.shutdown > 0 {
		parts = append(parts, leasehold.Shutdown(g.shutdown))
	}
	if g.kind == leasehold.KindService {
		parts = append(parts, leasehold.Backoff(20*time.Millisecond, 200*time.Millisecond))
		return leasehold.Func(g.name, c.service(path, g), parts...)
	}
	if parent == "" {
		parts = parts[:0] // the root is no child
	}
	parts = append(parts, leasehold.Strategy(g.strategy))
	if g.ordered {
		parts = append(parts, leasehold.Ordered())
	}
	for _, ch := range g.children {
		parts = append(parts, c.build(ch, path))
	}
	switch g.kind {
	case leasehold.KindLease:
		return leasehold.Lease(g.name, append(parts, leasehold.TTL(propTTL))...)
	case leasehold.KindElection:
		return leasehold.Election(g.name, c.prefix+"/elect/"+path, append(parts, leasehold.TTL(propTTL))...)
	}
	return leasehold.Supervisor(g.name, parts...)
}

type fault struct {
	at   time.Duration
	kind string // partition, revoke, delete-key, block-handler, cancel
	dur  time.Duration
	pick int
}

var caseSeq atomic.Int64

func runPropertyCase(t *rapid.T, srv *etcdtest.Server, direct *clientv3.Client, stats *propStats) {
	rootKind := rapid.SampledFrom([]leasehold.Kind{leasehold.KindLease, leasehold.KindElection}).Draw(t, "root")
	tree := genTree(t, rootKind, "r", 0)
	var faultsPlan []fault
	for range rapid.IntRange(0, 3).Draw(t, "faults") {
		faultsPlan = append(faultsPlan, fault{
			at:   time.Duration(rapid.Int64Range(int64(200*time.Millisecond), int64(propCaseSpan)).Draw(t, "fault.at")),
			kind: rapid.SampledFrom([]string{"partition", "revoke", "delete-key", "block-handler", "cancel"}).Draw(t, "fault.kind"),
			dur:  time.Duration(rapid.Int64Range(int64(300*time.Millisecond), int64(2500*time.Millisecond)).Draw(t, "fault.dur")),
			pick: rapid.IntRange(0, 100).Draw(t, "fault.pick"),
		})
	}
	slices.SortFunc(faultsPlan, func(a, b fault) int { return int(a.at - b.at) })

	c := &propCase{prefix: fmt.Sprintf("/prop/%d", caseSeq.Add(1)), kinds: map[string]leasehold.Kind{}}
	node := c.build(tree, "")
	sock := filepath.Join(os.TempDir(), fmt.Sprintf("lh-prop-%d-%d.sock", os.Getpid(), caseSeq.Load()))
	proxy, err := faults.NewProxy(sock, srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(sock)
	defer proxy.Close()
	client, err := etcdtest.NewClient(proxy.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// Markers: a key under each granted lease, put by the second client;
	// its deletion, seen on a watch, is when etcd revoked or expired it.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	markers := c.prefix + "/marker/"
	deleted := sync.Map{} // lease id -> clock.Time of the deletion seen
	watch := direct.Watch(watchCtx, markers, clientv3.WithPrefix(), clientv3.WithFilterPut())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for resp := range watch {
			at := clock.Boot.Now()
			for _, ev := range resp.Events {
				deleted.LoadOrStore(strings.TrimPrefix(string(ev.Kv.Key), markers), at)
			}
		}
	}()

	rec := newRecorder()
	var blockFor atomic.Int64
	var running atomic.Pointer[leasehold.Runtime]
	var overruns []leasehold.Overrun
	var overrunMu sync.Mutex
	onEvent := func(e leasehold.Event) {
		rec.on(e)
		if r := running.Load(); r != nil {
			_ = r.Snapshot()
		}
		if e.Kind == leasehold.EventLeaseGranted {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = direct.Put(ctx, fmt.Sprintf("%s%x", markers, int64(e.LeaseID)), e.Path, clientv3.WithLease(e.LeaseID))
			cancel()
		}
		if d := blockFor.Swap(0); d > 0 {
			time.Sleep(time.Duration(d)) // the fault: a handler that blocks
		}
	}
	rt, err := leasehold.New(client, node, leasehold.Options{
		Logger:  quiet,
		OnEvent: onEvent,
		Overrun: func(o leasehold.Overrun) {
			overrunMu.Lock()
			overruns = append(overruns, o)
			overrunMu.Unlock()
		},
	})
	if err != nil {
		if errors.Is(err, leasehold.ErrInvalidTree) {
			return // a generated tree whose Shutdowns do not fit: New said so
		}
		t.Fatal(err)
	}
	running.Store(rt)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()

	began := time.Now()
	for _, f := range faultsPlan {
		time.Sleep(time.Until(began.Add(f.at))) // the schedule itself, not a synchronisation
		stats.faults.Add(1)
		switch f.kind {
		case "partition":
			proxy.Partition()
			time.Sleep(f.dur)
			proxy.Heal()
		case "revoke":
			var ids []clientv3.LeaseID
			for _, e := range rec.all() {
				if e.Kind == leasehold.EventLeaseGranted {
					ids = append(ids, e.LeaseID)
				}
			}
			if len(ids) > 0 {
				id := ids[f.pick%len(ids)]
				deleted.Store(fmt.Sprintf("external:%x", int64(id)), true)
				rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
				_, _ = direct.Revoke(rctx, id)
				rcancel()
			}
		case "delete-key":
			dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = direct.Delete(dctx, c.prefix+"/elect/", clientv3.WithPrefix())
			dcancel()
		case "block-handler":
			blockFor.Store(int64(f.dur))
		case "cancel":
			cancel()
		}
	}
	time.Sleep(time.Until(began.Add(propCaseSpan)))
	cancel()
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(propRunReturn):
		t.Fatalf("I4: Run did not return %s after its context ended\ntree:\n%s\nfaults: %+v\nevents:%s", propRunReturn, tree, faultsPlan, rec.log.String())
	}
	if runErr != nil {
		t.Fatalf("Run = %v", runErr)
	}
	// Run has returned, so the outbox has delivered every event.
	stats.cases.Add(1)
	overrunMu.Lock()
	stuck := map[string]bool{}
	for _, o := range overruns {
		for _, s := range o.Stuck {
			stuck[s] = true
		}
	}
	stats.overruns.Add(int64(len(overruns)))
	overrunMu.Unlock()
	c.mu.Lock()
	runs := slices.Clone(c.runs)
	c.mu.Unlock()
	stats.services.Add(int64(len(runs)))

	// Give the watch a moment's worth of etcd round trips to report the
	// revokes Run waited for, then stop it.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _ = direct.Get(wctx, markers, clientv3.WithPrefix(), clientv3.WithSerializable())
	wcancel()
	stopWatch()
	<-watchDone
	client.Close()
	proxy.Close()

	v := checkInvariants(c, tree, rec.all(), runs, stuck, &deleted)
	if len(v) > 0 {
		t.Fatalf("%d violations:\n  %s\ntree:\n%s\nfaults: %+v\noverruns: %+v\nevents:%s",
			len(v), strings.Join(v, "\n  "), tree, faultsPlan, overruns, rec.log.String())
	}
	if left := leftovers(); len(left) > 0 {
		t.Fatalf("I4: goroutines of the runtime outlived Run:\n%s", strings.Join(left, "\n\n"))
	}
}

// leftovers returns the stacks of goroutines running the runtime's code
// (the shared etcd server's own are not this case's), waiting a little for
// ones that are on their way out, as goleak does.
func leftovers() []string {
	var left []string
	for wait := time.Millisecond; wait < 2*time.Second; wait *= 2 {
		left = left[:0]
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "github.com/leasehold/leasehold/") &&
				!strings.Contains(g, "runPropertyCase") && !strings.Contains(g, "internal/etcdtest") && !strings.Contains(g, "testing.tRunner") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(wait) // goroutines finishing their exit, as goleak retries
	}
	return left
}

type termInfo struct {
	granted, stopped clock.Time
	held             clock.Time // the latest HeldUntil the term's events carried
	lost             *leasehold.Event
	lease            clientv3.LeaseID
}

func checkInvariants(c *propCase, tree *gen, events []leasehold.Event, runs []propRun, stuck map[string]bool, deleted *sync.Map) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	terms := map[string]map[int]*termInfo{}
	lastTerm := map[string]int{}
	lastToken := map[string]int64{}
	for _, e := range events {
		if e.Node != leasehold.KindLease && e.Node != leasehold.KindElection || e.Term == 0 {
			continue
		}
		if terms[e.Path] == nil {
			terms[e.Path] = map[int]*termInfo{}
		}
		ti := terms[e.Path][e.Term]
		if ti == nil {
			ti = &termInfo{}
			terms[e.Path][e.Term] = ti
		}
		ti.held = max(ti.held, e.HeldUntil)
		switch e.Kind {
		case leasehold.EventLeaseGranted:
			// I5: terms strictly increase per node.
			if e.Term <= lastTerm[e.Path] {
				bad("I5: %s granted term %d after term %d", e.Path, e.Term, lastTerm[e.Path])
			}
			lastTerm[e.Path] = e.Term
			ti.granted, ti.lease = e.At, e.LeaseID
		case leasehold.EventElected:
			if e.Token <= lastToken[e.Path] {
				bad("I5: %s elected with token %d after token %d", e.Path, e.Token, lastToken[e.Path])
			}
			lastToken[e.Path] = e.Token
		case leasehold.EventLeaseLost:
			ev := e
			ti.lost = &ev
		case leasehold.EventTermStopped:
			ti.stopped = e.At
		}
	}
	// termAt is the term of lease node p that covered instant at.
	termAt := func(p string, at clock.Time) *termInfo {
		var best *termInfo
		for _, ti := range terms[p] {
			if ti.granted != 0 && ti.granted <= at && (best == nil || ti.granted > best.granted) {
				best = ti
			}
		}
		return best
	}
	enclosing := func(path string) []string {
		var out []string
		for i := range len(path) {
			if path[i] == '/' {
				if k := c.kinds[path[:i]]; k == leasehold.KindLease || k == leasehold.KindElection {
					out = append(out, path[:i])
				}
			}
		}
		return out
	}
	for _, r := range runs {
		if r.end == 0 {
			bad("I4: %s began at %v and never returned before Run did", r.path, r.start)
			continue
		}
		if stuck[r.path] {
			continue // an overrun named it: the policy's business
		}
		for _, p := range enclosing(r.path) {
			ti := termAt(p, r.start)
			if ti == nil {
				bad("I1: %s ran at %v outside any term of %s", r.path, r.start, p)
				continue
			}
			// I1: returned before HeldUntil of every enclosing lease.
			if !r.end.Before(ti.held) {
				bad("I1: %s returned at %v, not before %s's HeldUntil %v", r.path, r.end, p, ti.held)
			}
			// I3: the lease was revoked (or expired) only after it returned
			// (unless the fault schedule revoked it from outside).
			if _, external := deleted.Load(fmt.Sprintf("external:%x", int64(ti.lease))); external {
				continue
			}
			if at, ok := deleted.Load(fmt.Sprintf("%x", int64(ti.lease))); ok && !r.end.Before(at.(clock.Time)) {
				bad("I3: %s returned at %v, after etcd deleted %s's lease %x at %v", r.path, r.end, p, int64(ti.lease), at)
			}
		}
	}
	// I6: no child starts after its lease's fence_at, or after it was lost.
	for _, e := range events {
		if e.Kind != leasehold.EventServiceStarted {
			continue
		}
		for _, p := range enclosing(e.Path) {
			ti := termAt(p, e.At)
			if ti == nil {
				bad("I6: %s started at %v outside any term of %s", e.Path, e.At, p)
				continue
			}
			if ti.lost != nil && ti.lost.At.Before(e.At) && (ti.stopped == 0 || e.At.Before(ti.stopped)) {
				bad("I6: %s started at %v, after %s was lost at %v", e.Path, e.At, p, ti.lost.At)
			}
			if fence := ti.held.Add(-propBudget); !e.At.Before(fence) {
				bad("I6: %s started at %v, after %s's fence_at %v", e.Path, e.At, p, fence)
			}
		}
	}
	// I2: no overrun unless some service ignored its stop.
	if len(stuck) > 0 && !hasStubborn(tree) {
		bad("I2: overrun of %v although every service returns within its Shutdown", stuck)
	}
	return v
}

func hasStubborn(g *gen) bool {
	if g.stubborn {
		return true
	}
	return slices.ContainsFunc(g.children, hasStubborn)
}
