package debug

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
)

// series names a metric of the node at path.
func series(name, path string) string { return fmt.Sprintf("%s{path=%q}", name, path) }

// agree checks that /metrics shows what /debug/tree.json shows. It reads
// the tree, then the metrics, then the tree again, and compares when both
// trees agree on the discrete fields (held, term, state, role, token,
// restarts); values that move on their own (safety left, renewals) must lie
// between the two trees' values.
func agree(t *testing.T, base string) leasehold.Snapshot {
	t.Helper()
	discrete := func(n leasehold.NodeSnapshot) string {
		return fmt.Sprintf("%v %d %s %s %d %d", n.Held, n.Term, n.State, n.Role, n.Token, n.Restarts)
	}
	for try := 0; ; try++ {
		a, m, b := tree(t, base), scrape(t, base), tree(t, base)
		var nodes []struct{ a, b leasehold.NodeSnapshot }
		stable := true
		var walk func(n leasehold.NodeSnapshot)
		walk = func(n leasehold.NodeSnapshot) {
			nb, ok := find(b, n.Path)
			if !ok || discrete(n) != discrete(nb) {
				stable = false
				return
			}
			nodes = append(nodes, struct{ a, b leasehold.NodeSnapshot }{n, nb})
			for _, c := range n.Children {
				walk(c)
			}
		}
		walk(a.Tree)
		if !stable {
			if try > 50 {
				t.Fatal("the tree never held still between two reads")
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		val := func(s string) float64 {
			v, ok := m[s]
			if !ok {
				t.Errorf("no series %s", s)
			}
			return v
		}
		between := func(s string, x, y float64, slack float64) {
			if v := val(s); v < math.Min(x, y)-slack || v > math.Max(x, y)+slack {
				t.Errorf("%s = %v; the tree showed %v then %v", s, v, x, y)
			}
		}
		for _, p := range nodes {
			n := p.a
			state := fmt.Sprintf(`leasehold_node_state{kind=%q,path=%q,state=%q}`, n.Kind, n.Path, n.State)
			if val(state) != 1 {
				t.Errorf("%s = %v; want 1", state, m[state])
			}
			switch n.Kind {
			case leasehold.KindLease, leasehold.KindElection:
				if v := val(series("leasehold_lease_held", n.Path)); v != b2f(n.Held) {
					t.Errorf("%s: lease_held %v; the tree shows held=%v", n.Path, v, n.Held)
				}
				if v := val(series("leasehold_lease_terms_total", n.Path)); v != float64(n.Term) {
					t.Errorf("%s: terms %v; the tree shows term %d", n.Path, v, n.Term)
				}
				if v := val(series("leasehold_lease_ttl_seconds", n.Path)); v != float64(n.TTLMillis)/1000 {
					t.Errorf("%s: ttl %v; the tree shows %dms", n.Path, v, n.TTLMillis)
				}
				between(series("leasehold_lease_safety_seconds", n.Path), float64(p.a.HeldUntilMs)/1000, float64(p.b.HeldUntilMs)/1000, 0.3)
				between(series("leasehold_lease_renewals_total", n.Path), float64(p.a.Renewals), float64(p.b.Renewals), 0)
				if n.Kind == leasehold.KindElection {
					if v := val(series("leasehold_election_leader", n.Path)); v != b2f(n.Role == "leader") {
						t.Errorf("%s: election_leader %v; the tree shows role %s", n.Path, v, n.Role)
					}
					if v := val(series("leasehold_fencing_token", n.Path)); v != float64(n.Token) {
						t.Errorf("%s: fencing_token %v; the tree shows token %d", n.Path, v, n.Token)
					}
				}
			case leasehold.KindService:
				if v := val(series("leasehold_service_restarts_total", n.Path)); v != float64(n.Restarts) {
					t.Errorf("%s: restarts %v; the tree shows %d", n.Path, v, n.Restarts)
				}
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		return b
	}
}

// JSON and metrics agree with the tree before, during and after a lease
// loss and its re-acquire, and the event-counted metrics record the loss,
// the teardown and the leadership changes.
func TestMetricsAndJSONAgreeThroughLoss(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	var fails atomic.Int32
	tr := leasehold.Lease("registry", leasehold.TTL(2*time.Second),
		leasehold.Election("election", "/debugtest/agree", leasehold.TTL(2*time.Second),
			leasehold.Func("scheduler", block)),
		leasehold.Func("flaky", func(ctx context.Context) error {
			if n := fails.Add(1); n <= 2 {
				return fmt.Errorf("boom %d", n)
			}
			return block(ctx)
		}, leasehold.Backoff(10*time.Millisecond, 10*time.Millisecond)),
	)
	// A long re-acquire backoff leaves time to look at the lost state.
	l := start(t, c, tr, "n1", Options{}, leasehold.BackoffRange{Min: 1500 * time.Millisecond, Max: 1500 * time.Millisecond})
	base := l.http.URL

	poll(t, "the tree up", func() bool {
		s := tree(t, base)
		el, fl := mustFind(t, s, "registry/election"), mustFind(t, s, "registry/flaky")
		return s.Tree.Held && el.Role == "leader" && fl.State == leasehold.StateRunning && fl.Restarts == 2
	})
	s := agree(t, base)
	m := scrape(t, base)
	for name, want := range map[string]float64{
		series("leasehold_lease_lost_total", "registry"):                  0,
		series("leasehold_leadership_changes_total", "registry/election"): 1,
		`leasehold_events_total{kind="lease.granted"}`:                    2,
		`leasehold_info{node="n1"}`:                                       1,
		series("leasehold_dynamic_children", "registry"):                  0,
	} {
		if m[name] != want {
			t.Errorf("%s = %v; want %v", name, m[name], want)
		}
	}
	if code, _, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz while held: %d %s", code, body)
	}

	// Lose the root lease: revoke it from another client.
	revoke(t, c, s.Tree.LeaseID)
	l.events.await(t, leasehold.EventLeaseRevoked, "registry", 1)
	s = agree(t, base)
	if s.Tree.Held || s.Tree.Term != 1 {
		t.Fatalf("after the loss the tree shows held=%v term %d; want not held, term 1 (re-acquire waits 1.5s)", s.Tree.Held, s.Tree.Term)
	}
	if el := mustFind(t, s, "registry/election"); el.Role == "leader" {
		t.Errorf("the election still leads after its parent's loss")
	}
	code, _, body := get(t, base+"/readyz?verbose")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "[-]root-lease failed: lease \"registry\" is ") {
		t.Errorf("readyz after the loss: %d %q", code, body)
	}
	m = scrape(t, base)
	for name, want := range map[string]float64{
		series("leasehold_lease_lost_total", "registry"):                  1,
		series("leasehold_teardown_seconds_count", "registry"):            1,
		series("leasehold_teardown_margin_seconds_count", "registry"):     1,
		series("leasehold_leadership_changes_total", "registry/election"): 2,
		series("leasehold_election_leader", "registry/election"):          0,
	} {
		if m[name] != want {
			t.Errorf("%s = %v; want %v", name, m[name], want)
		}
	}
	if td := m[series("leasehold_teardown_seconds_sum", "registry")]; td <= 0 || td > 2 {
		t.Errorf("teardown took %vs", td)
	}

	// Re-acquire: a new term, a new leadership.
	poll(t, "the second term", func() bool {
		s := tree(t, base)
		return s.Tree.Held && s.Tree.Term == 2 && mustFind(t, s, "registry/election").Role == "leader"
	})
	s = agree(t, base)
	m = scrape(t, base)
	for name, want := range map[string]float64{
		series("leasehold_lease_terms_total", "registry"):                 2,
		series("leasehold_lease_held", "registry"):                        1,
		series("leasehold_lease_lost_total", "registry"):                  1,
		series("leasehold_leadership_changes_total", "registry/election"): 3,
		series("leasehold_service_restarts_total", "registry/flaky"):      2,
	} {
		if m[name] != want {
			t.Errorf("%s = %v; want %v", name, m[name], want)
		}
	}
	if code, _, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz after the re-acquire: %d %s", code, body)
	}
	_ = s
}

// Children added at run time are counted under their declared parent, not
// as series of their own.
func TestDynamicChildrenAggregate(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	var failed atomic.Int32
	tr := leasehold.Lease("runner", leasehold.TTL(2*time.Second),
		leasehold.Func("assignments", func(ctx context.Context) error {
			g := leasehold.GroupOf(ctx)
			for i := range 5 {
				name := fmt.Sprintf("unit:%d", i)
				err := g.Add(leasehold.Func(name, func(ctx context.Context) error {
					if i == 0 && failed.Add(1) <= 2 {
						return errors.New("exit status 1")
					}
					return block(ctx)
				}, leasehold.Backoff(10*time.Millisecond, 10*time.Millisecond)))
				if err != nil {
					return err
				}
			}
			return block(ctx)
		}))
	l := start(t, c, tr, "n1", Options{}, leasehold.BackoffRange{})
	poll(t, "five units", func() bool {
		s := tree(t, l.http.URL)
		return len(s.Tree.Children) == 6 && mustFind(t, s, "runner/unit:0").State == leasehold.StateRunning
	})
	m := scrape(t, l.http.URL)
	if v := m[series("leasehold_dynamic_children", "runner")]; v != 5 {
		t.Errorf("dynamic_children = %v; want 5", v)
	}
	if v := m[series("leasehold_dynamic_restarts_total", "runner")]; v != 2 {
		t.Errorf("dynamic_restarts_total = %v; want 2", v)
	}
	for k := range m {
		if strings.Contains(k, "unit:") {
			t.Errorf("a series for a dynamic child: %s", k)
		}
	}
}

// A client that opens the live stream and never reads cannot stall the
// tree: while its stream is stuck in a write, a lease loss and re-acquire
// complete, renewals go on, and other clients are served; then the stuck
// client is dropped at the write deadline.
func TestStalledClientNeverBlocksTheTree(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	// Many services with long names make each snapshot tens of kilobytes,
	// so the socket buffers fill after a few.
	var services []leasehold.Part
	for i := range 150 {
		services = append(services, leasehold.Func(fmt.Sprintf("service-with-a-rather-long-name-to-fill-the-buffers-%03d", i), block))
	}
	tr := leasehold.Lease("registry", append([]leasehold.Part{leasehold.TTL(2 * time.Second), leasehold.RenewInterval(300 * time.Millisecond)}, services...)...)
	const writeTimeout = 6 * time.Second
	l := start(t, c, tr, "n1", Options{Interval: 10 * time.Millisecond, WriteTimeout: writeTimeout}, leasehold.BackoffRange{})
	base := l.http.URL
	poll(t, "the lease held", func() bool { return tree(t, base).Tree.Held })

	// The stalled client: a small receive buffer, set before connecting so
	// that the window stays small, and no reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /debug/tree/events HTTP/1.1\r\nHost: debug\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Stuck: the stream has stopped sending while it should send every
	// 10ms.
	poll(t, "the stream stuck in a write", func() bool {
		if l.server.streamsOpen.Load() != 1 {
			return false
		}
		before := l.server.eventsSent.Load()
		time.Sleep(300 * time.Millisecond)
		return before > 0 && l.server.eventsSent.Load() == before
	})
	stuckAt := time.Now()
	t.Logf("stuck after %d snapshots", l.server.eventsSent.Load())

	// Meanwhile: a reading stream, tree.json and /metrics answer, a lost
	// lease is re-acquired and the new lease renews.
	resp, err := httpClient.Get(base + "/debug/tree/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readEvent(t, bufio.NewReader(resp.Body))
	first := tree(t, base).Tree
	revoke(t, c, first.LeaseID)
	poll(t, "a new term renewing", func() bool {
		s := tree(t, base).Tree
		return s.Held && s.Term == 2 && s.Renewals >= 2
	})
	scrape(t, base)
	if code, _, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz: %d", code)
	}
	if l.server.streamsDropped.Load() != 0 || time.Since(stuckAt) > writeTimeout-time.Second {
		t.Fatalf("the stalled stream did not overlap the loss and re-acquire (it took %v)", time.Since(stuckAt))
	}
	t.Logf("lost, re-acquired and renewed in %v while a client stalled", time.Since(stuckAt))

	// Then the stalled client is dropped at its write deadline.
	poll(t, "the stalled stream dropped", func() bool { return l.server.streamsDropped.Load() == 1 })
	if d := time.Since(stuckAt); d > writeTimeout+2*time.Second {
		t.Errorf("dropped %v after it stalled; the write deadline is %v", d, writeTimeout)
	}
}
