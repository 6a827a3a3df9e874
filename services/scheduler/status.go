package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/services/tasks"
)

// Status is the scheduler's state as read from etcd in one transaction:
// what `scheduler status` shows.
type Status struct {
	Leader string       `json:"leader"` // node id; "" when none leads
	Nodes  []NodeStatus `json:"nodes"`
	Tasks  []TaskStatus `json:"tasks"`
}

// NodeStatus is one node: whether it is registered and runs a runner.
type NodeStatus struct {
	Node     string `json:"node"`
	Member   bool   `json:"member"` // holds its node key
	Runner   bool   `json:"runner"` // holds its runner key
	Assigned int    `json:"assigned"`
	// Tasks are the task definitions its runner advertises.
	Tasks map[string]string `json:"tasks,omitempty"`
}

// TaskStatus is one task the leader schedules.
type TaskStatus struct {
	Published
	Next    time.Time `json:"next,omitzero"`     // the next slot after now
	Last    *Run      `json:"last,omitempty"`    // the latest finished run
	Running []Run     `json:"running,omitempty"` // runs assigned now
	// Differ lists the runners with another definition of the task.
	Differ map[string]string `json:"differ,omitempty"`
}

// ReadStatus reads the status under layout.
func ReadStatus(ctx context.Context, c *clientv3.Client, l Layout, now time.Time) (*Status, error) {
	resp, err := c.Txn(ctx).Then(
		clientv3.OpGet(l.Leader()+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1)),
		clientv3.OpGet(l.Prefix+"/nodes/", clientv3.WithPrefix()),
		clientv3.OpGet(l.Runners(), clientv3.WithPrefix()),
		clientv3.OpGet(l.Tasks(), clientv3.WithPrefix()),
		clientv3.OpGet(l.Runs(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	st := &Status{}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		st.Leader = string(kvs[0].Value)
	}
	nodes := map[string]*NodeStatus{}
	node := func(id string) *NodeStatus {
		if nodes[id] == nil {
			nodes[id] = &NodeStatus{Node: id}
		}
		return nodes[id]
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		node(strings.TrimPrefix(string(kv.Key), l.Prefix+"/nodes/")).Member = true
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		n := node(strings.TrimPrefix(string(kv.Key), l.Runners()))
		n.Runner = true
		var ad Advert
		_ = json.Unmarshal(kv.Value, &ad)
		n.Tasks = ad.Tasks
	}
	byTask := map[string]*TaskStatus{}
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		var p Published
		if json.Unmarshal(kv.Value, &p) != nil {
			continue
		}
		ts := &TaskStatus{Published: p}
		ts.Next = (&tasks.Task{Name: p.Name, Schedule: p.Schedule}).Next(now)
		for id, n := range nodes {
			if h, ok := n.Tasks[p.Name]; ok && h != p.Hash {
				if ts.Differ == nil {
					ts.Differ = map[string]string{}
				}
				ts.Differ[id] = h
			}
		}
		byTask[p.Name] = ts
	}
	for _, kv := range resp.Responses[4].GetResponseRange().Kvs {
		var r Run
		if json.Unmarshal(kv.Value, &r) != nil {
			continue
		}
		if r.State == StateAssigned {
			node(r.Runner).Assigned++
		}
		ts := byTask[r.Task]
		if ts == nil {
			continue
		}
		if r.State == StateAssigned {
			ts.Running = append(ts.Running, r)
		} else if ts.Last == nil || r.Slot.After(ts.Last.Slot) {
			ts.Last = &r
		}
	}
	for _, n := range nodes {
		st.Nodes = append(st.Nodes, *n)
	}
	slices.SortFunc(st.Nodes, func(a, b NodeStatus) int { return cmp.Compare(a.Node, b.Node) })
	for _, ts := range byTask {
		st.Tasks = append(st.Tasks, *ts)
	}
	slices.SortFunc(st.Tasks, func(a, b TaskStatus) int { return cmp.Compare(a.Name, b.Name) })
	return st, nil
}

// WriteText writes the status as tables.
func (st *Status) WriteText(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	leader := cmp.Or(st.Leader, "(none)")
	fmt.Fprintf(tw, "leader: %s\n\nNODE\tMEMBER\tRUNNER\tASSIGNED\n", leader)
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", n.Node, yes(n.Member), yes(n.Runner), n.Assigned)
	}
	fmt.Fprintf(tw, "\nTASK\tSCHEDULE\tLAST\tWHEN\tEXIT\tRUNNER\tNEXT\tNOTE\n")
	for _, t := range st.Tasks {
		last, when, exit, runner := "-", "-", "-", "-"
		if t.Last != nil {
			at := t.Last.FinishedAt
			if at.IsZero() {
				at = t.Last.Slot
			}
			last, when, exit, runner = string(t.Last.State), ago(now, at), fmt.Sprint(t.Last.ExitCode), cmp.Or(t.Last.Runner, "-")
		}
		if len(t.Running) > 0 {
			runner = t.Running[len(t.Running)-1].Runner + " (running)"
		}
		next := "-"
		if !t.Next.IsZero() {
			next = "in " + t.Next.Sub(now).Round(time.Second).String()
		}
		var notes []string
		if t.Unrunnable != "" {
			notes = append(notes, "UNRUNNABLE: "+t.Unrunnable)
		}
		for _, id := range slices.Sorted(maps.Keys(t.Differ)) {
			notes = append(notes, id+" has definition "+t.Differ[id])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Schedule, last, when, exit, runner, next, strings.Join(notes, "; "))
	}
	return tw.Flush()
}

// RunsQuery selects run records.
type RunsQuery struct {
	Task   string // "" for every task
	Failed bool   // only failed, lost and missed runs
	Limit  int    // newest first; 0 for all
}

// ReadRuns returns the run records q selects, newest slot first.
func ReadRuns(ctx context.Context, c *clientv3.Client, l Layout, q RunsQuery) ([]Run, error) {
	prefix := l.Runs()
	if q.Task != "" {
		prefix += q.Task + "/"
	}
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Run
	for _, kv := range resp.Kvs {
		var r Run
		if json.Unmarshal(kv.Value, &r) != nil {
			continue
		}
		if q.Failed && r.State != StateFailed && r.State != StateLost && r.State != StateMissed {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Run) int { return cmp.Or(b.Slot.Compare(a.Slot), cmp.Compare(a.Task, b.Task)) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// WriteRunsText writes runs as a table.
func WriteRunsText(w io.Writer, runs []Run) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TASK\tSLOT\tSTATE\tATTEMPT\tRUNNER\tEXIT\tTOOK\tREASON\n")
	for _, r := range runs {
		took := "-"
		if !r.FinishedAt.IsZero() && !r.AssignedAt.IsZero() {
			took = r.FinishedAt.Sub(r.AssignedAt).Round(time.Millisecond).String()
		}
		exit := "-"
		if r.State != StateAssigned && r.State != StateMissed {
			exit = fmt.Sprint(r.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Task, r.Slot.UTC().Format(time.RFC3339), r.State, r.Attempt,
			cmp.Or(r.Runner, "-"), exit, took, r.Reason)
	}
	return tw.Flush()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ago(now, t time.Time) string {
	return now.Sub(t).Round(time.Second).String() + " ago"
}
