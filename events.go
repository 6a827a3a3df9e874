package leasehold

import (
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/clock"
)

// EventKind says what happened to a node.
type EventKind string

// The events a Runtime reports, in the order they happen on one node.
const (
	EventAcquireFailed  EventKind = "lease.acquire_failed" // Err: why; a retry follows
	EventLeaseGranted   EventKind = "lease.granted"
	EventCampaigning    EventKind = "election.campaigning"
	EventElected        EventKind = "election.elected" // Token: the term's fencing token
	EventLeaseLost      EventKind = "lease.lost"       // Err: the cause; teardown starts
	EventTermStopped    EventKind = "term.stopped"     // every child of the term has returned
	EventLeaseRevoked   EventKind = "lease.revoked"
	EventServiceStarted EventKind = "service.started"
	EventServiceFailed  EventKind = "service.failed"  // returned or panicked on its own; Err
	EventServiceBackoff EventKind = "service.backoff" // waiting before a restart
	EventServiceStopped EventKind = "service.stopped" // returned after being asked to stop
	EventOverrun        EventKind = "overrun"         // Stuck: services still running at HeldUntil or past their Shutdown
	EventEscalated      EventKind = "escalated"       // a group exceeded its restart intensity and gives up; Err
	EventPaused         EventKind = "paused"          // a group with suture's backoff pauses its restarts
)

// Event is one thing that happened in a running tree. Handlers get events
// synchronously from the goroutine that caused them, so they see them in
// causal order, and must return quickly.
type Event struct {
	At      clock.Time
	Kind    EventKind
	Path    string // the node's path, names joined by "/"
	Node    Kind
	Term    int              // the lease node's term number, from 1
	LeaseID clientv3.LeaseID // lease and election events
	Token   int64            // election events: the term's fencing token
	// HeldUntil is the lease's HeldUntil when the event happened (lease and
	// election events): for EventLeaseLost, the instant by which the
	// subtree must have stopped.
	HeldUntil clock.Time
	Err       error
	Stuck     []string // overrun: paths of services that had not returned
}
