// Package checker reads the histories of a split-brain campaign (package
// history) and reports what would break the claim "no two leaders act at
// once":
//
//   - Overlaps: two different terms whose leadership intervals intersect.
//     A term is (node, lease, token); its interval is [first act, last act],
//     closed at both ends, on the CLOCK_BOOTTIME nanoseconds all processes
//     share. Intervals that merely touch (one's last act at the very
//     nanosecond of the other's first) overlap: nothing orders two acts
//     with equal timestamps, so they count as at once. Strictly after
//     (b.first > a.last, even by 1 ns) is a handover.
//   - Tokens going backwards: terms ordered by acquisition (their
//     "acquired" event, else their first act; ties broken by token, then
//     node, so the order is deterministic) must have strictly increasing
//     tokens.
//   - Stale writes: a write committed at etcd revision r on behalf of a term
//     that was not etcd's leader at r. etcd's leader at r is the election
//     key with the smallest create revision among those existing at r,
//     replayed from etcd's own record (key events); a write that commits
//     after its term's key was deleted therefore counts, however the client
//     saw it. Commits come from etcd's record (so writes whose outcome the
//     client never learned are checked too) and from the clients' accepted
//     writes. A rejected write is never a violation: that is fencing
//     working. Comparing r with the successor's token instead would be
//     wrong: a successor's key is created when it starts to wait, often
//     long before it leads.
//
// It also measures the interregnum (the gap between one leader's last act
// and the next leader's first act, negative for an overlap) and the
// failover after each fault aimed at a leader.
package checker

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/verify/history"
)

// TermID identifies a term: the node that held it, the lease it was held
// under and its fencing token.
type TermID struct {
	Node  string
	Lease int64
	Token int64
}

func (t TermID) String() string { return fmt.Sprintf("%s/%x@%d", t.Node, t.Lease, t.Token) }

// Term is one term that acted.
type Term struct {
	ID          TermID
	Inc         int   // the node process's incarnation
	Acquired    int64 // the acquired event, else the first act
	First, Last int64 // first and last act
	Acts        int
}

// Overlap is two terms that acted at once.
type Overlap struct {
	A, B     TermID // A began first (or, on equal first acts, sorts first)
	From, To int64  // the common part of their intervals
}

// Duration is the length of the common part (0 when they share one instant).
func (o Overlap) Duration() time.Duration { return time.Duration(o.To - o.From) }

// Backward is a term acquired after another with a token not above it.
type Backward struct {
	Earlier, Later TermID
	At             int64 // the later term's acquisition
}

// Stale is a write committed while its term was not etcd's leader.
type Stale struct {
	Term        TermID
	Inc         int
	Seq         int64
	Fenced      bool
	Rev         int64 // the revision it committed at
	LeaderToken int64 // etcd's leader at Rev (0: none)
	Source      string
}

// Stats summarises durations.
type Stats struct {
	N                int
	Min, Median, Max time.Duration
}

func statsOf(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Stats{N: len(s), Min: s[0], Median: s[(len(s)-1)/2], Max: s[len(s)-1]}
}

func (s Stats) String() string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s", ms(s.Min), ms(s.Median), ms(s.Max))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// FaultStats is what the faults of one kind did.
type FaultStats struct {
	Injected int
	// AtLeader counts those aimed at the node acting as leader.
	AtLeader int
	// Failovers counts those after which another term acted before the
	// next fault began; Failover measures fault start to its first act.
	Failovers int
	Failover  Stats
}

// Writes counts client writes by outcome.
type Writes struct {
	Accepted, Rejected, Unknown int
}

// Report is what Check found.
type Report struct {
	Terms      []Term
	Overlaps   []Overlap
	Backwards  []Backward
	Stale      []Stale
	Interregna []time.Duration // in term order; negative: an overlap
	// WritesChecked is false when the histories hold no record of etcd's
	// election keys, without which stale writes cannot be judged.
	WritesChecked bool
	// Commits counts the data writes in etcd's record.
	Commits int

	Faults   map[string]*FaultStats
	Failover Stats // every fault aimed at a leader that was followed by a failover
	Exits    map[string]int
	Fenced   Writes // client writes through a fence
	Plain    Writes // client writes without one
	Acts     int
	Refused  int // acts a guard refused after a pause
	Overruns int
	Events   int
	// Problems are malformed events (an act without a token, say).
	Problems []string
}

// StaleFenced counts stale writes that went through a fence: with fencing
// working they cannot exist, whatever the election library.
func (r *Report) StaleFenced() int {
	n := 0
	for _, s := range r.Stale {
		if s.Fenced {
			n++
		}
	}
	return n
}

// StalePlain counts stale writes made without a fence.
func (r *Report) StalePlain() int { return len(r.Stale) - r.StaleFenced() }

// Violations counts everything that breaks single leadership: overlaps,
// tokens going backwards and stale writes.
func (r *Report) Violations() int { return len(r.Overlaps) + len(r.Backwards) + len(r.Stale) }

// Interregnum summarises the interregna.
func (r *Report) Interregnum() Stats { return statsOf(r.Interregna) }

// LongestOverlap is the longest overlap, 0 if none.
func (r *Report) LongestOverlap() time.Duration {
	var d time.Duration
	for _, o := range r.Overlaps {
		d = max(d, o.Duration())
	}
	return d
}

// Check checks the events of one campaign (the histories of all its
// processes, in any order).
func Check(events []history.Event) *Report {
	r := &Report{Faults: map[string]*FaultStats{}, Exits: map[string]int{}, Events: len(events)}
	terms := map[TermID]*Term{}
	term := func(e history.Event) *Term {
		id := TermID{e.Node, e.Lease, e.Token}
		t := terms[id]
		if t == nil {
			t = &Term{ID: id, Inc: e.Inc}
			terms[id] = t
		}
		return t
	}
	var keys, commits, accepted, faults []history.Event
	for _, e := range events {
		switch e.Kind {
		case history.Act, history.Acquired:
			if e.Token == 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("%s:%d: %s without a token", e.File, e.Line, e.Kind))
				continue
			}
			t := term(e)
			if e.Kind == history.Acquired {
				if t.Acquired == 0 || e.At < t.Acquired {
					t.Acquired = e.At
				}
				continue
			}
			r.Acts++
			if t.Acts == 0 || e.At < t.First {
				t.First = e.At
			}
			if t.Acts == 0 || e.At > t.Last {
				t.Last = e.At
			}
			t.Acts++
		case history.Refused:
			r.Refused++
		case history.Overrun:
			r.Overruns++
		case history.Write:
			w := &r.Plain
			if e.Fenced {
				w = &r.Fenced
			}
			switch e.Result {
			case history.Accepted:
				w.Accepted++
				accepted = append(accepted, e)
			case history.Rejected:
				w.Rejected++
			default:
				w.Unknown++
			}
		case history.Key:
			keys = append(keys, e)
		case history.Commit:
			commits = append(commits, e)
		case history.Fault:
			if e.Phase == "start" {
				faults = append(faults, e)
			}
		case history.Exit:
			what := fmt.Sprintf("status %d", e.Code)
			if e.Signal != "" {
				what = e.Signal
			}
			r.Exits[what]++
		}
	}

	// Terms that acted, in order of their first act; ties deterministic.
	for _, t := range terms {
		if t.Acts == 0 {
			continue
		}
		if t.Acquired == 0 || t.Acquired > t.First {
			t.Acquired = t.First
		}
		r.Terms = append(r.Terms, *t)
	}
	slices.SortFunc(r.Terms, func(a, b Term) int {
		return cmp.Or(cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last), compareID(a.ID, b.ID))
	})
	r.Overlaps = overlaps(r.Terms)
	r.Backwards = backwards(r.Terms)
	r.Interregna = interregna(r.Terms)
	r.checkWrites(keys, commits, accepted)
	r.Commits = len(commits)
	r.checkFaults(faults)
	return r
}

func compareID(a, b TermID) int {
	return cmp.Or(cmp.Compare(a.Token, b.Token), strings.Compare(a.Node, b.Node), cmp.Compare(a.Lease, b.Lease))
}

// overlaps returns every pair of terms whose closed intervals intersect.
// terms are sorted by first act, so a later term b overlaps an earlier a
// exactly when b.First <= a.Last.
func overlaps(terms []Term) []Overlap {
	var out []Overlap
	for i, b := range terms {
		for _, a := range terms[:i] {
			if b.First <= a.Last {
				out = append(out, Overlap{A: a.ID, B: b.ID, From: b.First, To: min(a.Last, b.Last)})
			}
		}
	}
	return out
}

// backwards orders terms by acquisition and reports each whose token is not
// above every token acquired before it.
func backwards(terms []Term) []Backward {
	byAcq := slices.Clone(terms)
	slices.SortFunc(byAcq, func(a, b Term) int {
		return cmp.Or(cmp.Compare(a.Acquired, b.Acquired), compareID(a.ID, b.ID))
	})
	var out []Backward
	var top *Term
	for i := range byAcq {
		t := &byAcq[i]
		if top != nil && t.ID.Token <= top.ID.Token {
			out = append(out, Backward{Earlier: top.ID, Later: t.ID, At: t.Acquired})
		}
		if top == nil || t.ID.Token > top.ID.Token {
			top = t
		}
	}
	return out
}

// interregna: for each term after the first, its first act minus the
// latest last act of the terms that began before it.
func interregna(terms []Term) []time.Duration {
	var out []time.Duration
	var last int64
	for i, t := range terms {
		if i > 0 {
			out = append(out, time.Duration(t.First-last))
		}
		last = max(last, t.Last)
	}
	return out
}

// leaders is etcd's election leader by revision: leader[i] leads from
// revision from[i] until from[i+1].
type leaders struct {
	from   []int64
	leader []int64 // token; 0: nobody
}

// replay builds the leader timeline from etcd's record of election keys.
func replay(keys []history.Event) leaders {
	slices.SortStableFunc(keys, func(a, b history.Event) int { return cmp.Compare(a.Rev, b.Rev) })
	live := map[string]int64{} // key -> create revision
	var l leaders
	for i, e := range keys {
		switch e.Op {
		case "put":
			if _, ok := live[e.Key]; !ok {
				live[e.Key] = e.Token
			}
		case "delete":
			delete(live, e.Key)
		}
		if i+1 < len(keys) && keys[i+1].Rev == e.Rev {
			continue // one transaction: judge its end state
		}
		var first int64
		for _, tok := range live {
			if first == 0 || tok < first {
				first = tok
			}
		}
		if n := len(l.leader); n == 0 || l.leader[n-1] != first {
			l.from = append(l.from, e.Rev)
			l.leader = append(l.leader, first)
		}
	}
	return l
}

// at is the leader's token at revision rev.
func (l leaders) at(rev int64) int64 {
	i := sort.Search(len(l.from), func(i int) bool { return l.from[i] > rev })
	if i == 0 {
		return 0
	}
	return l.leader[i-1]
}

type writeID struct {
	node   string
	inc    int
	seq    int64
	fenced bool
}

func (r *Report) checkWrites(keys, commits, accepted []history.Event) {
	if len(keys) == 0 {
		return
	}
	r.WritesChecked = true
	l := replay(keys)
	seen := map[writeID]bool{}
	check := func(e history.Event, source string) {
		id := writeID{e.Node, e.Inc, e.Seq, e.Fenced}
		if seen[id] {
			return
		}
		seen[id] = true
		if lead := l.at(e.Rev); lead != e.Token {
			r.Stale = append(r.Stale, Stale{
				Term: TermID{e.Node, e.Lease, e.Token}, Inc: e.Inc, Seq: e.Seq, Fenced: e.Fenced,
				Rev: e.Rev, LeaderToken: lead, Source: source,
			})
		}
	}
	for _, e := range commits {
		check(e, "etcd")
	}
	for _, e := range accepted {
		check(e, "client")
	}
	slices.SortFunc(r.Stale, func(a, b Stale) int { return cmp.Compare(a.Rev, b.Rev) })
}

// checkFaults counts faults by kind and measures failovers: after a fault
// aimed at the leader, the first act of a term other than the one acting
// when it began, if that comes before the next fault.
func (r *Report) checkFaults(faults []history.Event) {
	slices.SortStableFunc(faults, func(a, b history.Event) int { return cmp.Compare(a.At, b.At) })
	var all []time.Duration
	byKind := map[string][]time.Duration{}
	for i, f := range faults {
		fs := r.Faults[f.Fault]
		if fs == nil {
			fs = &FaultStats{}
			r.Faults[f.Fault] = fs
		}
		fs.Injected++
		if f.Role != "leader" {
			continue
		}
		fs.AtLeader++
		next := int64(1<<63 - 1)
		if i+1 < len(faults) {
			next = faults[i+1].At
		}
		// The term acting when the fault began: the latest to start by then.
		var current *Term
		for j := range r.Terms {
			if r.Terms[j].First <= f.At {
				current = &r.Terms[j]
			}
		}
		for _, t := range r.Terms {
			if t.First <= f.At || (current != nil && t.ID == current.ID) {
				continue
			}
			if t.First < next {
				d := time.Duration(t.First - f.At)
				fs.Failovers++
				all = append(all, d)
				byKind[f.Fault] = append(byKind[f.Fault], d)
			}
			break
		}
	}
	for k, ds := range byKind {
		r.Faults[k].Failover = statsOf(ds)
	}
	r.Failover = statsOf(all)
}

// Summary is a plain-text account of r, listing up to limit of each kind
// of violation.
func (r *Report) Summary(limit int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "events %d, terms %d, acts %d, refused %d, overruns %d\n", r.Events, len(r.Terms), r.Acts, r.Refused, r.Overruns)
	fmt.Fprintf(&b, "overlaps %d (longest %s), tokens backwards %d, ", len(r.Overlaps), ms(r.LongestOverlap()), len(r.Backwards))
	if r.WritesChecked {
		fmt.Fprintf(&b, "stale writes %d fenced + %d plain (of %d commits)\n", r.StaleFenced(), r.StalePlain(), r.Commits)
	} else {
		fmt.Fprintf(&b, "stale writes not checked (no record of etcd's election keys)\n")
	}
	fmt.Fprintf(&b, "interregnum min/median/max %s over %d handovers\n", r.Interregnum(), len(r.Interregna))
	for i, o := range r.Overlaps {
		if i == limit {
			fmt.Fprintf(&b, "  ... %d more overlaps\n", len(r.Overlaps)-limit)
			break
		}
		fmt.Fprintf(&b, "  overlap %s and %s for %s (from %d)\n", o.A, o.B, ms(o.Duration()), o.From)
	}
	for i, k := range r.Backwards {
		if i == limit {
			fmt.Fprintf(&b, "  ... %d more tokens backwards\n", len(r.Backwards)-limit)
			break
		}
		fmt.Fprintf(&b, "  token backwards: %s acquired at %d after %s\n", k.Later, k.At, k.Earlier)
	}
	for i, s := range r.Stale {
		if i == limit {
			fmt.Fprintf(&b, "  ... %d more stale writes\n", len(r.Stale)-limit)
			break
		}
		fmt.Fprintf(&b, "  stale write (fenced %v, seen by %s): %s seq %d committed at revision %d while %d led\n",
			s.Fenced, s.Source, s.Term, s.Seq, s.Rev, s.LeaderToken)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  malformed: %s\n", p)
	}
	return b.String()
}
