package checker

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/verify/history"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// h builds hand-written histories.
type h []history.Event

// term adds a term of node (lease = token for brevity) acquired at the
// first act and acting at each of ats.
func (x h) term(node string, token int64, ats ...int64) h {
	x = append(x, history.Event{Node: node, Kind: history.Acquired, At: ats[0], Lease: token, Token: token})
	for _, at := range ats {
		x = append(x, history.Event{Node: node, Kind: history.Act, At: at, Lease: token, Token: token})
	}
	return x
}

func (x h) key(op string, rev, token int64) h {
	return append(x, history.Event{Node: "etcd", Kind: history.Key, Op: op, Key: "/e/" + itoa(token), Rev: rev, Token: token})
}

func (x h) write(node string, token, seq, sent, at, rev int64, result string, fenced bool) h {
	return append(x, history.Event{Node: node, Kind: history.Write, Lease: token, Token: token, Seq: seq,
		Sent: sent, At: at, Rev: rev, Result: result, Fenced: fenced})
}

func (x h) commit(node string, token, seq, rev int64, fenced bool) h {
	return append(x, history.Event{Node: node, Kind: history.Commit, Lease: token, Token: token, Seq: seq, Rev: rev, Fenced: fenced})
}

func (x h) fault(kind, role string, at int64) h {
	return append(x, history.Event{Node: "driver", Kind: history.Fault, Phase: "start", Fault: kind, Role: role, At: at})
}

func itoa(n int64) string { return strconv.FormatInt(n, 16) }

func check(t *testing.T, events h) *Report {
	t.Helper()
	r := Check(events)
	// The order of the input must not matter.
	for i := range 5 {
		shuffled := append(h(nil), events...)
		rand.New(rand.NewPCG(uint64(i), 1)).Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if again := Check(shuffled); !reflect.DeepEqual(r, again) {
			t.Fatalf("report depends on event order:\n%s\nvs\n%s", r.Summary(10), again.Summary(10))
		}
	}
	return r
}

func TestCleanHandover(t *testing.T) {
	r := check(t, h{}.term("a", 10, 100, 150, 200).term("b", 20, 300, 400))
	if r.Violations() != 0 {
		t.Fatalf("violations in a clean handover:\n%s", r.Summary(10))
	}
	if len(r.Terms) != 2 || r.Acts != 5 {
		t.Errorf("terms %d acts %d; want 2 and 5", len(r.Terms), r.Acts)
	}
	if want := []time.Duration{100}; !reflect.DeepEqual(r.Interregna, want) {
		t.Errorf("interregna %v; want %v", r.Interregna, want)
	}
}

// Intervals are closed: a successor whose first act has the very timestamp
// of the predecessor's last act acted at once with it; one nanosecond later
// is a handover.
func TestAdjacentIntervals(t *testing.T) {
	r := check(t, h{}.term("a", 10, 100, 200).term("b", 20, 200, 300))
	if len(r.Overlaps) != 1 {
		t.Fatalf("touching intervals: %d overlaps; want 1", len(r.Overlaps))
	}
	if o := r.Overlaps[0]; o.A.Token != 10 || o.B.Token != 20 || o.From != 200 || o.To != 200 || o.Duration() != 0 {
		t.Errorf("overlap %+v; want a then b, at 200 only", o)
	}
	if r.Interregna[0] != 0 {
		t.Errorf("interregnum %v; want 0", r.Interregna[0])
	}

	r = check(t, h{}.term("a", 10, 100, 200).term("b", 20, 201, 300))
	if r.Violations() != 0 {
		t.Fatalf("1 ns apart is a handover, got:\n%s", r.Summary(10))
	}
	if r.Interregna[0] != 1 {
		t.Errorf("interregnum %v; want 1ns", r.Interregna[0])
	}
}

// Equal timestamps everywhere: two terms acquiring and acting at the same
// instant. The report is the same whatever the input order, the overlap is
// found, and the token order decides the acquisition order.
func TestEqualTimestamps(t *testing.T) {
	r := check(t, h{}.term("b", 20, 100).term("a", 10, 100))
	if len(r.Overlaps) != 1 {
		t.Fatalf("%d overlaps; want 1:\n%s", len(r.Overlaps), r.Summary(10))
	}
	if o := r.Overlaps[0]; o.A.Token != 10 || o.B.Token != 20 {
		t.Errorf("overlap %+v; want the smaller token first on a tie", o)
	}
	if len(r.Backwards) != 0 {
		t.Errorf("tokens backwards %v; a tie is ordered by token", r.Backwards)
	}
	// The same term twice at one instant is one term, not an overlap.
	r = check(t, h{}.term("a", 10, 100, 100, 100))
	if r.Violations() != 0 || len(r.Terms) != 1 || r.Terms[0].Acts != 3 {
		t.Errorf("one term acting thrice at one instant:\n%s", r.Summary(10))
	}
}

func TestOverlapNotOnlyWithPredecessor(t *testing.T) {
	// a acts throughout b's and c's terms (a deposed leader that never
	// noticed): both overlap a, not each other.
	r := check(t, h{}.term("a", 10, 0, 1000).term("b", 20, 100, 200).term("c", 30, 300, 400))
	if len(r.Overlaps) != 2 {
		t.Fatalf("%d overlaps; want 2:\n%s", len(r.Overlaps), r.Summary(10))
	}
	for _, o := range r.Overlaps {
		if o.A.Node != "a" {
			t.Errorf("overlap %+v does not involve a", o)
		}
	}
	if want := []time.Duration{-900, -700}; !reflect.DeepEqual(r.Interregna, want) {
		t.Errorf("interregna %v; want %v", r.Interregna, want)
	}
	if got := r.LongestOverlap(); got != 100 {
		t.Errorf("longest overlap %v; want 100ns", got)
	}
}

func TestTokensBackwards(t *testing.T) {
	// b acquires after a stopped, but with a smaller token: a candidate
	// that believed it led with a key from before a's term.
	r := check(t, h{}.term("a", 20, 100, 200).term("b", 10, 300, 400))
	if len(r.Backwards) != 1 || r.Backwards[0].Earlier.Token != 20 || r.Backwards[0].Later.Token != 10 {
		t.Fatalf("backwards %v; want b after a", r.Backwards)
	}
	if len(r.Overlaps) != 0 {
		t.Errorf("overlaps %v; want none", r.Overlaps)
	}
	// The acquisition, not the first act, orders terms: b acquired (by its
	// own account) before a, so tokens increase.
	x := h{}.term("a", 20, 100, 200)
	x = append(x, history.Event{Node: "b", Kind: history.Acquired, At: 50, Lease: 10, Token: 10},
		history.Event{Node: "b", Kind: history.Act, At: 300, Lease: 10, Token: 10})
	if r := check(t, x); len(r.Backwards) != 0 {
		t.Errorf("backwards %v; want none when b acquired first", r.Backwards)
	}
}

// A leader paused in the middle of a write: the write was sent before the
// pause and its answer arrives after the successor acted. It is fine if it
// committed before the successor's term began in etcd (its revision says
// so), and a violation only if it was accepted after. Rejected writes are
// fencing at work.
func TestPausedWriterWhoseWriteLandsLate(t *testing.T) {
	base := h{}.
		key("put", 10, 10). // a campaigns and leads
		key("put", 12, 12). // b queues behind a: its token 12 is below a's later writes
		key("delete", 30, 10).
		term("a", 10, 100, 200).
		term("b", 12, 500, 600)

	t.Run("committed before the successor's term", func(t *testing.T) {
		r := check(t, base.write("a", 10, 1, 190, 550, 25, history.Accepted, true).commit("a", 10, 1, 25, true))
		if r.Violations() != 0 {
			t.Fatalf("a write committed at 25, before b led at 30, is not stale (b's token 12 is irrelevant):\n%s", r.Summary(10))
		}
	})
	t.Run("rejected after", func(t *testing.T) {
		r := check(t, base.write("a", 10, 1, 190, 550, 35, history.Rejected, true))
		if r.Violations() != 0 || r.Fenced.Rejected != 1 {
			t.Fatalf("a rejected late write is no violation:\n%s", r.Summary(10))
		}
	})
	t.Run("accepted after", func(t *testing.T) {
		r := check(t, base.write("a", 10, 1, 190, 550, 35, history.Accepted, false).commit("a", 10, 1, 35, false))
		if len(r.Stale) != 1 || r.StalePlain() != 1 || r.Stale[0].LeaderToken != 12 || r.Stale[0].Source != "etcd" {
			t.Fatalf("stale %+v; want one plain write of a at 35 while 12 led, counted once", r.Stale)
		}
	})
	t.Run("outcome unknown to the client but in etcd's record", func(t *testing.T) {
		r := check(t, base.write("a", 10, 1, 190, 550, 0, history.Unknown, true).commit("a", 10, 1, 33, true))
		if r.StaleFenced() != 1 {
			t.Fatalf("stale %+v; want the commit etcd recorded at 33", r.Stale)
		}
	})
	t.Run("accepted per the client only", func(t *testing.T) {
		r := check(t, base.write("a", 10, 1, 190, 550, 35, history.Accepted, true))
		if len(r.Stale) != 1 || r.Stale[0].Source != "client" {
			t.Fatalf("stale %+v; want the client's accepted write", r.Stale)
		}
	})
	t.Run("a queued candidate that believes it leads", func(t *testing.T) {
		r := check(t, base.write("b", 12, 1, 150, 160, 20, history.Accepted, true).commit("b", 12, 1, 20, true))
		if len(r.Stale) != 1 || r.Stale[0].LeaderToken != 10 {
			t.Fatalf("stale %+v; want b's write at 20 while 10 led", r.Stale)
		}
	})
	t.Run("without etcd's record", func(t *testing.T) {
		r := check(t, h{}.term("a", 10, 100).write("a", 10, 1, 90, 95, 35, history.Accepted, true))
		if r.WritesChecked || len(r.Stale) != 0 {
			t.Fatalf("writes judged without a record of the keys: %+v", r)
		}
	})
}

// Keys changed in one transaction are judged by the transaction's end
// state; a revision with no election key leads to token 0.
func TestLeaderTimeline(t *testing.T) {
	l := replay(h{}.key("put", 5, 5).key("put", 7, 7).key("delete", 9, 5).key("delete", 11, 7).key("put", 11, 11))
	for rev, want := range map[int64]int64{1: 0, 4: 0, 5: 5, 8: 5, 9: 7, 10: 7, 11: 11, 99: 11} {
		if got := l.at(rev); got != want {
			t.Errorf("leader at %d = %d; want %d", rev, got, want)
		}
	}
}

func TestFailover(t *testing.T) {
	x := h{}.term("a", 10, 100, 240).term("b", 20, 300, 560).term("c", 30, 700, 800).
		fault("kill", "leader", 250).      // a killed: b acts 50 later
		fault("partition", "leader", 500). // b survives this one...
		fault("latency", "leader", 600).   // ...and c takes over after the next: that one's
		fault("pause", "follower", 650)    // not aimed at the leader
	r := check(t, x)
	if k := r.Faults["kill"]; k.Injected != 1 || k.AtLeader != 1 || k.Failovers != 1 || k.Failover.Max != 50 {
		t.Errorf("kill %+v; want one failover of 50ns", k)
	}
	if p := r.Faults["partition"]; p.Failovers != 0 {
		t.Errorf("partition %+v; want no failover before the next fault", p)
	}
	if l := r.Faults["latency"]; l.Failovers != 0 {
		t.Errorf("latency %+v; want none: c came after the next fault", l)
	}
	if p := r.Faults["pause"]; p.Injected != 1 || p.AtLeader != 0 {
		t.Errorf("pause %+v; want one, not at the leader", p)
	}
	if r.Failover.N != 1 || r.Failover.Median != 50 {
		t.Errorf("failover %+v; want one of 50ns", r.Failover)
	}
}

func TestMalformed(t *testing.T) {
	r := Check(h{{Node: "a", Kind: history.Act, At: 5, File: "a.jsonl", Line: 3}})
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "a.jsonl:3") {
		t.Errorf("problems %v; want the act without a token", r.Problems)
	}
}
