package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduler's per-task metrics. Each node counts what it
// saw: units count the runs they finished, the leader the runs it gave up
// and the slots it recorded as missed, so sum over nodes in queries. Task
// labels come from the tasks files, so they stay bounded. A nil *Metrics
// records nothing.
type Metrics struct {
	runs        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	exhausted   *prometheus.CounterVec
	missed      *prometheus.CounterVec
	unrunnable  *prometheus.GaugeVec
}

// NewMetrics registers the scheduler's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "leasehold", Subsystem: "scheduler", Name: "runs_total",
			Help: "Runs that ended, by task and state (done, failed: seen by the runner; lost, missed: by the leader).",
		}, []string{"task", "state"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "leasehold", Subsystem: "scheduler", Name: "last_success_timestamp_seconds",
			Help: "Unix time at which a run of the task last ended done on this node.",
		}, []string{"task"}),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "leasehold", Subsystem: "scheduler", Name: "retries_exhausted_total",
			Help: "Runs that failed with no retries left.",
		}, []string{"task"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "leasehold", Subsystem: "scheduler", Name: "missed_total",
			Help: "Slots recorded as missed by the leader, by reason (no_runner: no live runner has the task's definition).",
		}, []string{"task", "reason"}),
		unrunnable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "leasehold", Subsystem: "scheduler", Name: "task_unrunnable",
			Help: "1 while this node leads and no live runner has the task's definition.",
		}, []string{"task"}),
	}
	reg.MustRegister(m.runs, m.lastSuccess, m.exhausted, m.missed, m.unrunnable)
	return m
}

func (m *Metrics) ended(task string, state State, at time.Time) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(task, string(state)).Inc()
	if state == StateDone {
		m.lastSuccess.WithLabelValues(task).Set(float64(at.UnixNano()) / 1e9)
	}
}

func (m *Metrics) retriesExhausted(task string) {
	if m != nil {
		m.exhausted.WithLabelValues(task).Inc()
	}
}

func (m *Metrics) slotMissed(task, reason string) {
	if m != nil {
		m.missed.WithLabelValues(task, reason).Inc()
		m.runs.WithLabelValues(task, string(StateMissed)).Inc()
	}
}

func (m *Metrics) setUnrunnable(task string, v bool) {
	if m == nil {
		return
	}
	if v {
		m.unrunnable.WithLabelValues(task).Set(1)
	} else {
		m.unrunnable.DeleteLabelValues(task)
	}
}
