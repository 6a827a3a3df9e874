package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/leasehold/leasehold"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/singleflight"
)

// Options configure a Cluster. Zero fields take their documented defaults.
type Options struct {
	// Client reads the registry, the elections and the leases.
	Client *clientv3.Client
	// Members is the prefix of the registry keys (e.g. "/leasehold/nodes/");
	// a node's id is the rest of its key. Required.
	Members string
	// Elections are the election prefixes to show (as given to etcdctl
	// elect --listen).
	Elections []string
	// Self is this node's id: its tree comes from Local, not over HTTP.
	Self  string
	Local func() leasehold.Snapshot
	// Token is sent to the other nodes' endpoints as a bearer token.
	Token string
	// Tasks, if set, reads the scheduler's tasks for the view.
	Tasks func(ctx context.Context) ([]Task, error)
	// Interval is the shortest time between two views, and between two
	// fetches of one node's tree. Default: 1s.
	Interval time.Duration
	// Timeout bounds each fetch of a node's tree and each etcd read.
	// Default: 2s. A view waits at most Interval for the trees; a node
	// slower than that is shown unreachable.
	Timeout time.Duration
	// Forget is how long a gone node stays in the view. Default: 10m.
	Forget time.Duration
	// Logger receives the package's own logs. Default: slog.Default().
	Logger *slog.Logger
}

// Cluster builds Views; see the package doc. Create it with New and Close
// it when done.
type Cluster struct {
	opts   Options
	client *http.Client
	flight singleflight.Group
	ctx    context.Context // ends fetches on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // fetch goroutines

	mu struct {
		sync.Mutex
		closed bool
		view   View
		built  time.Time // when the view's refresh started; zero: never
		probes map[string]*probe
		gone   map[string]Node // by id, with GoneSince
	}
}

// probe is one node's fetches. Guarded by Cluster.mu.
type probe struct {
	url     string
	started time.Time // of the latest fetch
	running bool
	done    chan struct{} // closed when the running fetch ends
	// The latest completed fetch.
	tree *leasehold.Snapshot
	err  error
	at   time.Time // when it started
	took time.Duration
}

// New returns a Cluster reading the registry under opts.Members.
func New(opts Options) (*Cluster, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("cluster: Options.Client is nil: pass the node's etcd client")
	case opts.Members == "":
		return nil, errors.New(`cluster: Options.Members is empty: give the registry prefix, e.g. "/leasehold/nodes/"`)
	case opts.Interval < 0 || opts.Timeout < 0 || opts.Forget < 0:
		return nil, errors.New("cluster: Options.Interval, Timeout and Forget must not be negative: leave them zero for the defaults")
	}
	opts.Interval = cmp.Or(opts.Interval, time.Second)
	opts.Timeout = cmp.Or(opts.Timeout, 2*time.Second)
	opts.Forget = cmp.Or(opts.Forget, 10*time.Minute)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Cluster{opts: opts}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // debug endpoints are reached directly
			DialContext:            (&net.Dialer{Timeout: opts.Timeout}).DialContext,
			TLSHandshakeTimeout:    opts.Timeout,
			ResponseHeaderTimeout:  opts.Timeout,
			MaxIdleConnsPerHost:    1,
			IdleConnTimeout:        30 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		// Only registered URLs are fetched: a redirect could point anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.mu.probes = map[string]*probe{}
	c.mu.gone = map[string]Node{}
	return c, nil
}

// Close stops the fetches in flight and waits for them.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.mu.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.client.CloseIdleConnections()
}

// View returns the cluster as last seen, rebuilt first if it is older than
// Interval. Concurrent callers share one rebuild.
func (c *Cluster) View(ctx context.Context) View {
	c.mu.Lock()
	if !c.mu.built.IsZero() && time.Since(c.mu.built) < c.opts.Interval {
		v := c.mu.view
		c.mu.Unlock()
		return v
	}
	c.mu.Unlock()
	// Do runs the rebuild on this goroutine; it is bounded by Timeout and
	// Interval, not by ctx, so that one viewer leaving does not fail the
	// others waiting for it.
	v, _, _ := c.flight.Do("view", func() (any, error) {
		c.mu.Lock()
		if !c.mu.built.IsZero() && time.Since(c.mu.built) < c.opts.Interval {
			v := c.mu.view
			c.mu.Unlock()
			return v, nil
		}
		c.mu.Unlock()
		return c.refresh(), nil
	})
	return v.(View)
}

// ClusterJSON is the view as JSON, for the debug endpoint.
func (c *Cluster) ClusterJSON(ctx context.Context) ([]byte, error) {
	return json.Marshal(c.View(ctx))
}

// refresh builds a new view from the registry, the elections, the leases
// and the trees, within Timeout (the trees within Interval), and keeps it.
func (c *Cluster) refresh() View {
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
	defer cancel()
	v := View{At: start, From: c.opts.Self, Members: c.opts.Members, Nodes: []Node{}, Elections: []Election{}}

	resp, err := c.opts.Client.Get(ctx, c.opts.Members, clientv3.WithPrefix())
	if err != nil {
		return c.staleView(start, err)
	}
	for _, prefix := range c.opts.Elections {
		v.Elections = append(v.Elections, c.election(ctx, prefix))
	}

	// Start the fetches due, then read the leases while they run.
	nodes, seen, waits := c.startFetches(resp.Kvs)
	c.readLeases(ctx, nodes, resp.Kvs)
	c.readTasks(ctx, &v)
	c.awaitTrees(start, waits)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.fillTreesLocked(start, nodes)
	nodes = c.withGoneLocked(start, nodes, seen)
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	markLeaders(v.Elections, nodes)
	v.Nodes = nodes
	c.mu.view = v
	c.mu.built = start
	return v
}

// staleView is kept when the registry cannot be read: the last view, marked
// with the error, beats an empty one while etcd is away.
func (c *Cluster) staleView(start time.Time, err error) View {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.mu.view
	v.At, v.From, v.Members = start, c.opts.Self, c.opts.Members
	v.EtcdError = fmt.Sprintf("cannot read the registry: %v (showing the view of %s)", err, c.mu.built.Format(time.RFC3339))
	if v.Nodes == nil {
		v.Nodes, v.Elections = []Node{}, []Election{}
	}
	c.mu.built = start
	c.mu.view = v
	return v
}

// startFetches turns the registry's entries into nodes (one per entry, in
// its order, so that nodes[i] is kvs[i]) and starts the tree fetches that
// are due, under one lock so that a node's probe is never started twice.
// It returns the ids seen and the fetches in flight to wait for.
func (c *Cluster) startFetches(kvs []*mvccpb.KeyValue) (nodes []Node, seen map[string]bool, waits []chan struct{}) {
	nodes = make([]Node, 0, len(kvs))
	c.mu.Lock()
	defer c.mu.Unlock()
	seen = map[string]bool{}
	for _, kv := range kvs {
		id := strings.TrimPrefix(string(kv.Key), c.opts.Members)
		m := ParseMember(id, kv.Value)
		n := Node{ID: id, Key: string(kv.Key), DebugURL: m.DebugURL, Version: m.Version, Started: m.Started, Status: StatusNoEndpoint}
		if kv.Lease != 0 {
			n.LeaseID = fmt.Sprintf("%x", kv.Lease)
		}
		seen[id] = true
		delete(c.mu.gone, id)
		switch {
		case id == c.opts.Self && c.opts.Local != nil:
		case m.DebugURL == "":
		default:
			url, err := CheckURL(m.DebugURL)
			if err != nil {
				n.Status, n.Error = StatusUnreachable, err.Error()
				break
			}
			if done := c.probeLocked(id, url); done != nil {
				waits = append(waits, done)
			}
		}
		nodes = append(nodes, n)
	}
	for id, p := range c.mu.probes {
		if !seen[id] && !p.running {
			delete(c.mu.probes, id)
		}
	}
	return nodes, seen, waits
}

// probeLocked starts a fetch of the node's tree at url unless one runs or
// the last started within Interval: this is what bounds the fan-out to one
// fetch per node. It returns the running fetch's done channel, or nil.
func (c *Cluster) probeLocked(id, url string) chan struct{} {
	p := c.mu.probes[id]
	if p == nil || p.url != url {
		if p != nil && p.running {
			return nil // the old URL's fetch ends first
		}
		p = &probe{url: url}
		c.mu.probes[id] = p
	}
	if !p.running && time.Since(p.started) >= c.opts.Interval && !c.mu.closed {
		p.running, p.started, p.done = true, time.Now(), make(chan struct{})
		c.wg.Add(1)
		go c.fetch(id, p)
	}
	if p.running {
		return p.done
	}
	return nil
}

// readLeases marks the nodes whose registry lease is missing or expired as
// gone, and records the others' TTL; nodes[i] is kvs[i]. An etcd error
// leaves a node as it is: a slow read says nothing about the node.
func (c *Cluster) readLeases(ctx context.Context, nodes []Node, kvs []*mvccpb.KeyValue) {
	for i := range nodes {
		n := &nodes[i]
		if n.LeaseID == "" {
			n.Status, n.Error = StatusGone, "its registry key has no lease"
			continue
		}
		ttl, err := c.opts.Client.TimeToLive(ctx, clientv3.LeaseID(kvs[i].Lease))
		switch {
		case err != nil:
		case ttl.TTL <= 0:
			n.Status, n.Error = StatusGone, "etcd no longer has its lease"
		default:
			n.LeaseTTLMs = ttl.TTL * 1000
		}
	}
}

// readTasks adds the scheduler's tasks, if Options.Tasks is set; their
// error goes in the view rather than failing it.
func (c *Cluster) readTasks(ctx context.Context, v *View) {
	if c.opts.Tasks == nil {
		return
	}
	tasks, err := c.opts.Tasks(ctx)
	v.Tasks = tasks
	if err != nil {
		v.TasksError = err.Error()
	}
}

// awaitTrees waits for the fetches, at most Interval from start, so that
// one slow node cannot hold the view back.
func (c *Cluster) awaitTrees(start time.Time, waits []chan struct{}) {
	wait := time.NewTimer(max(0, c.opts.Interval-time.Since(start)))
	defer wait.Stop()
	for _, done := range waits {
		select {
		case <-done:
		case <-wait.C:
		}
	}
}

// fillTreesLocked gives each node its status and tree from its latest
// fetch (this node's from Local); a fetch still running after Interval
// shows the node unreachable.
func (c *Cluster) fillTreesLocked(start time.Time, nodes []Node) {
	for i := range nodes {
		n := &nodes[i]
		if n.Status == StatusGone {
			continue
		}
		if n.ID == c.opts.Self && c.opts.Local != nil {
			snap := c.opts.Local()
			n.Status, n.Tree = StatusUp, &snap
			continue
		}
		p := c.mu.probes[n.ID]
		if p == nil || n.Error != "" {
			continue
		}
		switch {
		case p.running && time.Since(p.started) >= c.opts.Interval:
			n.Status, n.Error = StatusUnreachable, fmt.Sprintf("no answer from %s after %s", p.url, time.Since(p.started).Round(time.Millisecond))
		case p.err != nil:
			n.Status, n.Error = StatusUnreachable, p.err.Error()
		case p.tree != nil:
			n.Status, n.Tree = StatusUp, p.tree
			n.AgeMs = start.Sub(p.at).Milliseconds()
		default:
			n.Status, n.Error = StatusUnreachable, "no answer yet from "+p.url
		}
		n.FetchMs = p.took.Milliseconds()
	}
}

// withGoneLocked remembers the nodes gone since the last view and returns
// nodes with the gone ones added, so that a vanished node stays visible for
// Forget instead of silently disappearing.
func (c *Cluster) withGoneLocked(start time.Time, nodes []Node, seen map[string]bool) []Node {
	// Nodes seen before but registered no more are gone.
	for _, old := range c.mu.view.Nodes {
		if !seen[old.ID] && old.Status != StatusGone {
			c.mu.gone[old.ID] = Node{ID: old.ID, Key: old.Key, DebugURL: old.DebugURL, Version: old.Version, Started: old.Started,
				LeaseID: old.LeaseID, Status: StatusGone, Error: "its registration vanished: its lease expired or was revoked", GoneSince: start}
		}
	}
	for id, g := range c.mu.gone {
		if start.Sub(g.GoneSince) > c.opts.Forget {
			delete(c.mu.gone, id)
			continue
		}
		if n := slices.IndexFunc(nodes, func(n Node) bool { return n.ID == id }); n < 0 {
			nodes = append(nodes, g)
		}
	}
	for i := range nodes {
		if nodes[i].Status == StatusGone && nodes[i].GoneSince.IsZero() {
			nodes[i].GoneSince = start
			c.mu.gone[nodes[i].ID] = nodes[i]
		}
	}
	return nodes
}

// markLeaders links each election to its leader's node both ways: the node
// lists what it leads, and the election takes the safety margin the
// leader's own tree reports.
func markLeaders(elections []Election, nodes []Node) {
	for i := range elections {
		e := &elections[i]
		for j := range nodes {
			if e.Leader != "" && nodes[j].ID == e.Leader {
				nodes[j].Leads = append(nodes[j].Leads, e.Prefix)
				if nodes[j].Tree != nil {
					if el := findElection(nodes[j].Tree.Tree, e.Prefix); el != nil && el.Role == "leader" {
						e.SafetyLeftMs, e.AgeMs = el.HeldUntilMs, nodes[j].AgeMs
					}
				}
			}
		}
	}
}

// election reads one election's queue.
func (c *Cluster) election(ctx context.Context, prefix string) Election {
	e := Election{Prefix: prefix, SafetyLeftMs: -1, Candidates: []string{}}
	resp, err := c.opts.Client.Get(ctx, strings.TrimRight(prefix, "/")+"/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return e
	}
	for i, kv := range resp.Kvs {
		if i == 0 {
			e.Leader, e.Token, e.Key, e.LeaseID = string(kv.Value), kv.CreateRevision, string(kv.Key), fmt.Sprintf("%x", kv.Lease)
			continue
		}
		e.Candidates = append(e.Candidates, string(kv.Value))
	}
	return e
}

func findElection(n leasehold.NodeSnapshot, prefix string) *leasehold.NodeSnapshot {
	if n.Kind == leasehold.KindElection && strings.TrimRight(n.Prefix, "/") == strings.TrimRight(prefix, "/") {
		return &n
	}
	for _, ch := range n.Children {
		if f := findElection(ch, prefix); f != nil {
			return f
		}
	}
	return nil
}

// fetch gets one node's tree and records the result.
func (c *Cluster) fetch(id string, p *probe) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
	defer cancel()
	start := time.Now()
	snap, err := Fetch[leasehold.Snapshot](ctx, c.client, p.url+"/debug/tree.json", c.opts.Token)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer from %s within %s", p.url, c.opts.Timeout)
	}
	if err == nil && snap.Node != id {
		err = fmt.Errorf("%s answers as node %q, not %q: check the node's advertised debug URL", p.url, snap.Node, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p.running, p.at, p.took, p.err, p.tree = false, start, time.Since(start), err, nil
	if err == nil {
		p.tree = &snap
	}
	close(p.done)
}

// Fetch gets a tree (or any JSON) from a debug endpoint URL with client,
// which should not follow redirects; a redirect answer is an error.
func Fetch[T any](ctx context.Context, client *http.Client, url, token string) (T, error) {
	var out T
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return out, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return out, fmt.Errorf("%s: %s: redirect to %q not followed", url, resp.Status, resp.Header.Get("Location"))
	case resp.StatusCode == http.StatusUnauthorized && token == "":
		return out, fmt.Errorf("%s: 401 unauthorized: the endpoint needs a token", url)
	case resp.StatusCode == http.StatusUnauthorized:
		return out, fmt.Errorf("%s: 401 unauthorized: wrong token (the cluster's nodes must share one debug token)", url)
	case resp.StatusCode != http.StatusOK:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return out, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return out, fmt.Errorf("%s: unreadable answer: %w", url, err)
	}
	return out, nil
}
