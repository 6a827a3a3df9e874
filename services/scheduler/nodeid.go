package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeInfo is the value of a node key: which process holds the node id.
type NodeInfo struct {
	Node     string    `json:"node"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Started  time.Time `json:"started"`
	Instance string    `json:"instance"` // random, one per process
	// DebugURL is where the node's debug endpoint is reached (empty when
	// it is off), and Version its build: the cluster page reads both.
	DebugURL string `json:"debug_url,omitempty"`
	Version  string `json:"version,omitempty"`
}

// NewNodeInfo describes this process as node.
func NewNodeInfo(node string) NodeInfo {
	host, _ := os.Hostname()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return NodeInfo{Node: node, Host: host, PID: os.Getpid(), Started: time.Now().UTC(), Instance: hex.EncodeToString(b)}
}

// IDWatch notices when this node's id is held by another process: another
// live node started with the same --node-id, or this node's previous run
// whose lease has not expired yet. The node keeps waiting for its key
// either way (the runtime does); IDWatch says so at once and answers
// readiness with the reason.
type IDWatch struct {
	Client *clientv3.Client
	Layout Layout
	Info   NodeInfo // this process
	TTL    time.Duration
	Log    *slog.Logger
	// Every is the time between checks. Default 1s.
	Every time.Duration

	mu     sync.Mutex
	reason string // why the id is not ours, "" when it is or is free
}

// Err returns why this node cannot hold its id, or nil.
func (w *IDWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reason == "" {
		return nil
	}
	return errors.New(w.reason)
}

// Run checks until ctx ends.
func (w *IDWatch) Run(ctx context.Context) {
	every := w.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var holder string   // instance last reported
	var since time.Time // when it was first seen
	warnedLive := false
	for {
		reason := ""
		if h, lease, ttl, err := w.holder(ctx); err == nil && h != nil && h.Instance != w.Info.Instance {
			age := time.Since(h.Started).Round(time.Second)
			reason = fmt.Sprintf("node id %q is held by another process (lease %x, host %s, pid %d, started %s ago); "+
				"waiting for it: if that process still runs, stop it or start this one with another --node-id; "+
				"if it was this node's previous run, the id comes back once its lease expires (within %s)",
				w.Info.Node, lease, h.Host, h.PID, age, w.TTL)
			if h.Instance != holder {
				holder, since, warnedLive = h.Instance, time.Now(), false
				w.Log.Warn("node id held by another process; waiting for it", "node", w.Info.Node, "holder_lease", fmt.Sprintf("%x", lease),
					"holder_host", h.Host, "holder_pid", h.PID, "holder_age", age.String(), "lease_ttl_left", ttl.String(),
					"fix", "stop the other process or give this one another --node-id; a restarted node gets its id back within the TTL")
			} else if !warnedLive && w.TTL > 0 && time.Since(since) > w.TTL+every {
				// Held for longer than a lease lives without renewal: the
				// holder is alive, not this node's previous run.
				warnedLive = true
				w.Log.Warn("node id still held after the lease TTL: another live process uses it", "node", w.Info.Node,
					"holder_lease", fmt.Sprintf("%x", lease), "holder_host", h.Host, "holder_pid", h.PID)
			}
		} else if err == nil {
			holder = ""
		}
		w.mu.Lock()
		w.reason = reason
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// holder returns the process holding the node key, if any, with its lease
// and the lease's remaining TTL.
func (w *IDWatch) holder(ctx context.Context) (*NodeInfo, int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := w.Client.Get(ctx, w.Layout.Node(w.Info.Node))
	if err != nil || len(resp.Kvs) == 0 {
		return nil, 0, 0, err
	}
	kv := resp.Kvs[0]
	var h NodeInfo
	if json.Unmarshal(kv.Value, &h) != nil {
		// A node of an older version: its value is the bare node id.
		h = NodeInfo{Node: string(kv.Value), Instance: "unknown"}
	}
	var left time.Duration
	if h.Instance != w.Info.Instance {
		// Only for a report: the holder is not this process.
		if ttl, err := w.Client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil {
			left = time.Duration(ttl.TTL) * time.Second
		}
	}
	return &h, kv.Lease, left, nil
}
