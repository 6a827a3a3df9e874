package campaign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The fault kinds.
const (
	faultKill        = "kill"         // SIGKILL the leader; restarted after a delay
	faultPause       = "pause"        // SIGSTOP a node for longer than the TTL, then SIGCONT
	faultPartition   = "partition"    // blackhole every proxy of a node
	faultLatency     = "latency"      // add latency on every proxy of a node
	faultStubborn    = "stubborn"     // the leader's service refuses to stop, and the leader is cut off
	faultEtcdRestart = "etcd-restart" // kill every etcd member and restart them on their data
	faultEtcdLeader  = "etcd-leader"  // kill or stop the raft leader member, then restart or continue it
)

var allKinds = []string{faultKill, faultPause, faultPartition, faultLatency, faultStubborn, faultEtcdRestart, faultEtcdLeader}

func parseKinds(s string) ([]string, error) {
	if s == "" || s == "all" {
		return allKinds, nil
	}
	var kinds []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(allKinds, k) {
			return nil, fmt.Errorf("unknown fault kind %q (kinds: %s)", k, strings.Join(allKinds, ","))
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

// fault is one planned fault. Everything about it is drawn from the seed;
// only which node is the leader when it is injected depends on the run.
type fault struct {
	N       int
	Kind    string
	Gap     time.Duration // pause before injecting it
	Hold    time.Duration // how long it lasts (kill: none)
	Leader  bool          // aimed at the leader, else at a follower
	Pick    int           // which follower (modulo their number)
	Latency time.Duration // latency: added each way
	Kill    bool          // etcd faults: SIGKILL (else SIGTERM for a restart, SIGSTOP for the leader)
}

func (f fault) String() string {
	s := fmt.Sprintf("#%d %s", f.N, f.Kind)
	switch f.Kind {
	case faultKill, faultStubborn:
	case faultEtcdRestart:
		s += map[bool]string{true: " (SIGKILL)", false: " (SIGTERM)"}[f.Kill]
	case faultEtcdLeader:
		s += map[bool]string{true: " (SIGKILL)", false: " (SIGSTOP)"}[f.Kill]
	default:
		if !f.Leader {
			s += " of a follower"
		}
	}
	if f.Latency > 0 {
		s += fmt.Sprintf(" +%s", f.Latency)
	}
	if f.Hold > 0 {
		s += fmt.Sprintf(" for %s", f.Hold.Round(time.Millisecond))
	}
	return s
}

// planner draws faults from a seed: the same seed and kinds give the same
// sequence of faults.
type planner struct {
	rng   *rand.Rand
	kinds []string
	ttl   time.Duration
	n     int
}

func newPlanner(seed uint64, kinds []string, ttl time.Duration) *planner {
	return &planner{rng: rand.New(rand.NewPCG(seed, 0x5b1a)), kinds: kinds, ttl: ttl}
}

// between draws a duration uniformly in [lo, hi].
func (p *planner) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(p.rng.Int64N(int64(hi-lo)+1))
}

func (p *planner) next() fault {
	p.n++
	f := fault{
		N:      p.n,
		Kind:   p.kinds[p.rng.IntN(len(p.kinds))],
		Gap:    p.between(100*time.Millisecond, 600*time.Millisecond),
		Leader: p.rng.IntN(5) != 0, // four in five at the leader
		Pick:   p.rng.IntN(1 << 16),
		Kill:   p.rng.IntN(2) == 0,
	}
	switch f.Kind {
	case faultKill:
		f.Leader = true
	case faultPause:
		// Longer than the TTL, so that etcd expires the lease meanwhile.
		f.Hold = p.ttl + p.between(200*time.Millisecond, 1200*time.Millisecond)
	case faultPartition:
		// Some shorter than the TTL (the lease must survive them), most
		// longer.
		f.Hold = p.between(300*time.Millisecond, 2*p.ttl)
	case faultLatency:
		f.Latency = p.between(30*time.Millisecond, 600*time.Millisecond)
		f.Hold = p.between(time.Second, 2*p.ttl)
	case faultStubborn:
		f.Leader = true
		f.Hold = p.ttl + p.between(time.Second, 1500*time.Millisecond)
	case faultEtcdRestart:
		f.Hold = p.between(200*time.Millisecond, 2*time.Second)
		f.Kill = p.rng.IntN(10) < 7
	case faultEtcdLeader:
		f.Hold = p.between(300*time.Millisecond, 2*time.Second)
	}
	return f
}
