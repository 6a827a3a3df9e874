package debug

import (
	"strings"
	"sync"

	"github.com/leasehold/leasehold"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leasehold/leasehold/clock"
)

// Metrics exports a tree's state and history in Prometheus form.
//
// Gauges and most counters are read from a Snapshot at scrape time, so they
// agree with /debug/tree.json; what a snapshot cannot show (leadership
// changes, lost leases, teardown durations, overruns) is counted from
// events, which reach Observe.
//
// Every series is labelled with a node's path. To keep their number
// bounded, only the nodes of the declared tree (the paths present when
// NewMetrics is called) get series of their own: children added at run
// time (Group.Add; the scheduler's units) are many and short-lived, so they
// are counted under the declared node that holds them
// (leasehold_dynamic_children, leasehold_dynamic_restarts_total).
type Metrics struct {
	src      Source
	declared map[string]leasehold.Kind

	mu struct {
		sync.Mutex
		leading map[string]bool       // election paths leading now
		lostAt  map[string]clock.Time // lease paths lost and not yet stopped
	}

	leadershipChanges *prometheus.CounterVec
	leasesLost        *prometheus.CounterVec
	acquireFailures   *prometheus.CounterVec
	overruns          *prometheus.CounterVec
	dynamicRestarts   *prometheus.CounterVec
	events            *prometheus.CounterVec
	teardown          *prometheus.HistogramVec
	teardownMargin    *prometheus.HistogramVec
}

const ns = "leasehold"

var (
	descInfo         = prometheus.NewDesc(ns+"_info", "Always 1; the node label is this process's node id.", []string{"node"}, nil)
	descHeld         = prometheus.NewDesc(ns+"_lease_held", "1 while the lease (of a lease or election node) is held locally, else 0.", []string{"path"}, nil)
	descSafety       = prometheus.NewDesc(ns+"_lease_safety_seconds", "Seconds of local safety left on the lease (held_until_ms); 0 when not held.", []string{"path"}, nil)
	descTTL          = prometheus.NewDesc(ns+"_lease_ttl_seconds", "The lease's TTL in etcd.", []string{"path"}, nil)
	descTerms        = prometheus.NewDesc(ns+"_lease_terms_total", "Terms begun by the node (each with a new lease): the snapshot's term.", []string{"path"}, nil)
	descRenewals     = prometheus.NewDesc(ns+"_lease_renewals_total", "Acknowledged renewals of the current term's lease; starts again from 0 with each term.", []string{"path"}, nil)
	descRenewalFails = prometheus.NewDesc(ns+"_lease_renewal_failures_total", "Renewal streams of the current term's lease that broke or stalled; starts again from 0 with each term.", []string{"path"}, nil)
	descLeader       = prometheus.NewDesc(ns+"_election_leader", "1 while this node leads the election, else 0.", []string{"path"}, nil)
	descToken        = prometheus.NewDesc(ns+"_fencing_token", "The current term's fencing token (an election while leading, a keyed lease while held); 0 otherwise.", []string{"path"}, nil)
	descState        = prometheus.NewDesc(ns+"_node_state", "1 for the node's current state, 0 for the other states of its kind.", []string{"path", "kind", "state"}, nil)
	descRestarts     = prometheus.NewDesc(ns+"_service_restarts_total", "Restarts of a declared service after it failed.", []string{"path"}, nil)
	descDynamic      = prometheus.NewDesc(ns+"_dynamic_children", "Children added at run time (Group.Add) now under the node.", []string{"path"}, nil)
)

// statesOf lists the states a node of each kind goes through, so that
// leasehold_node_state has a series for each (0 or 1).
var statesOf = map[leasehold.Kind][]string{
	leasehold.KindService:    {leasehold.StateStarting, leasehold.StateRunning, leasehold.StateBackoff, leasehold.StateStopping, leasehold.StateStopped, leasehold.StateFailed},
	leasehold.KindLease:      {leasehold.StateAcquiring, leasehold.StateHeld, leasehold.StateStopping, leasehold.StateStopped},
	leasehold.KindElection:   {leasehold.StateAcquiring, leasehold.StateCampaigning, leasehold.StateLeading, leasehold.StateStopping, leasehold.StateStopped},
	leasehold.KindSupervisor: {leasehold.StateRunning, leasehold.StateStopped},
}

// NewMetrics registers a tree's metrics on reg (the binary's own registry,
// never the global one) and returns them; it panics if they are already
// registered there. Call it before the tree runs: the paths src shows then
// are the declared tree. Plug Observe into leasehold.Options.OnEvent; as
// the Runtime needs its Options first, go through a closure:
//
//	var m *debug.Metrics
//	rt, _ := leasehold.New(client, tree, leasehold.Options{OnEvent: func(e leasehold.Event) { m.Observe(e) }})
//	m = debug.NewMetrics(reg, rt)
func NewMetrics(reg *prometheus.Registry, src Source) *Metrics {
	m := &Metrics{src: src, declared: map[string]leasehold.Kind{}}
	m.mu.leading = map[string]bool{}
	m.mu.lostAt = map[string]clock.Time{}
	var walk func(n leasehold.NodeSnapshot)
	walk = func(n leasehold.NodeSnapshot) {
		m.declared[n.Path] = n.Kind
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(src.Snapshot().Tree)

	path := []string{"path"}
	m.leadershipChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leadership_changes_total",
		Help: "Changes of this node's role in the election: elected, or no longer leading."}, path)
	m.leasesLost = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "lease_lost_total",
		Help: "Leases (of lease and election nodes) lost: not renewed in time, gone in etcd, or an election key deleted."}, path)
	m.acquireFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "lease_acquire_failures_total",
		Help: "Failed attempts to grant a lease (etcd unreachable); each is retried."}, path)
	m.overruns = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "overruns_total",
		Help: "Services still running when their lease's safe time ran out (or past their shutdown), by lease path."}, path)
	m.dynamicRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dynamic_restarts_total",
		Help: "Restarts of children added at run time (Group.Add), by the declared node that holds them."}, path)
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_total",
		Help: "Events of the tree, by kind."}, []string{"kind"})
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m.teardown = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "teardown_seconds",
		Help: "Time from a lease's loss to its whole subtree having returned.", Buckets: buckets}, path)
	m.teardownMargin = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "teardown_margin_seconds",
		Help: "Safety left on a lost lease when its subtree had returned (negative: an overrun).", Buckets: buckets}, path)

	// Series of the declared tree start at 0, so that increase() sees the
	// first event.
	for p, kind := range m.declared {
		if kind == leasehold.KindLease || kind == leasehold.KindElection {
			m.leasesLost.WithLabelValues(p)
			m.acquireFailures.WithLabelValues(p)
			m.overruns.WithLabelValues(p)
		}
		if kind == leasehold.KindElection {
			m.leadershipChanges.WithLabelValues(p)
		}
	}
	reg.MustRegister(m.leadershipChanges, m.leasesLost, m.acquireFailures, m.overruns, m.dynamicRestarts,
		m.events, m.teardown, m.teardownMargin, snapshotCollector{m})
	return m
}

// label is the path label for path: itself if declared, else its nearest
// declared ancestor.
func (m *Metrics) label(path string) (string, bool) {
	for p := path; ; {
		if _, ok := m.declared[p]; ok {
			return p, p == path
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return p, false
		}
		p = p[:i]
	}
}

// Observe counts an event. It never blocks; plug it into
// leasehold.Options.OnEvent. A nil Metrics ignores events.
func (m *Metrics) Observe(e leasehold.Event) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(string(e.Kind)).Inc()
	label, declared := m.label(e.Path)
	switch e.Kind {
	case leasehold.EventAcquireFailed:
		m.acquireFailures.WithLabelValues(label).Inc()
	case leasehold.EventElected:
		m.mu.Lock()
		m.mu.leading[e.Path] = true
		m.mu.Unlock()
		m.leadershipChanges.WithLabelValues(label).Inc()
	case leasehold.EventLeaseLost:
		m.leasesLost.WithLabelValues(label).Inc()
		m.mu.Lock()
		m.mu.lostAt[e.Path] = e.At
		m.mu.Unlock()
		m.stepDown(e, label)
	case leasehold.EventTermStopped:
		m.mu.Lock()
		lost, ok := m.mu.lostAt[e.Path]
		delete(m.mu.lostAt, e.Path)
		m.mu.Unlock()
		if ok && lost != 0 && e.At != 0 {
			m.teardown.WithLabelValues(label).Observe(e.At.Sub(lost).Seconds())
			if e.HeldUntil != 0 {
				m.teardownMargin.WithLabelValues(label).Observe(e.HeldUntil.Sub(e.At).Seconds())
			}
		}
		m.stepDown(e, label)
	case leasehold.EventLeaseRevoked:
		// A campaign that failed has no term.stopped.
		m.mu.Lock()
		delete(m.mu.lostAt, e.Path)
		m.mu.Unlock()
		m.stepDown(e, label)
	case leasehold.EventOverrun:
		m.overruns.WithLabelValues(label).Inc()
	case leasehold.EventServiceBackoff:
		// A child waits before each restart. Declared services' restarts
		// come from the snapshot.
		if !declared {
			m.dynamicRestarts.WithLabelValues(label).Inc()
		}
	}
}

// stepDown counts the end of a leadership.
func (m *Metrics) stepDown(e leasehold.Event, label string) {
	if e.Node != leasehold.KindElection {
		return
	}
	m.mu.Lock()
	was := m.mu.leading[e.Path]
	delete(m.mu.leading, e.Path)
	m.mu.Unlock()
	if was {
		m.leadershipChanges.WithLabelValues(label).Inc()
	}
}

// snapshotCollector reads a Snapshot at scrape time.
type snapshotCollector struct{ m *Metrics }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descHeld, descSafety, descTTL, descTerms, descRenewals, descRenewalFails,
		descLeader, descToken, descState, descRestarts, descDynamic} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.src.Snapshot()
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, s.Node)
	var walk func(n leasehold.NodeSnapshot)
	walk = func(n leasehold.NodeSnapshot) {
		if _, ok := c.m.declared[n.Path]; !ok {
			return // dynamic: counted by its parent
		}
		c.collect(ch, n)
		for _, k := range n.Children {
			walk(k)
		}
	}
	walk(s.Tree)
}

func (c snapshotCollector) collect(ch chan<- prometheus.Metric, n leasehold.NodeSnapshot) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{n.Path}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, n.Path)
	}
	states := statesOf[n.Kind]
	known := false
	for _, st := range states {
		known = known || st == n.State
		gauge(descState, b2f(st == n.State), string(n.Kind), st)
	}
	if !known && n.State != "" {
		gauge(descState, 1, string(n.Kind), n.State)
	}
	switch n.Kind {
	case leasehold.KindLease, leasehold.KindElection:
		gauge(descHeld, b2f(n.Held))
		gauge(descSafety, float64(n.HeldUntilMs)/1000)
		gauge(descTTL, float64(n.TTLMillis)/1000)
		counter(descTerms, float64(n.Term))
		counter(descRenewals, float64(n.Renewals))
		counter(descRenewalFails, float64(n.RenewalFail))
		if n.Kind == leasehold.KindElection {
			gauge(descLeader, b2f(n.Role == "leader"))
		}
		if n.Kind == leasehold.KindElection || n.Key != "" {
			gauge(descToken, float64(n.Token))
		}
	case leasehold.KindService:
		counter(descRestarts, float64(n.Restarts))
	}
	if n.Kind != leasehold.KindService {
		dynamic := 0
		for _, k := range n.Children {
			if _, ok := c.m.declared[k.Path]; !ok {
				dynamic++
			}
		}
		gauge(descDynamic, float64(dynamic))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
