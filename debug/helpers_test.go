package debug

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// serve serves s on a loopback httptest server, closed (streams first) in
// t.Cleanup.
func serve(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return ts
}

// events records a runtime's events.
type events struct {
	mu   sync.Mutex
	list []leasehold.Event
}

func (e *events) on(ev leasehold.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

// await waits for an event of kind on path with term >= term.
func (e *events) await(t *testing.T, kind leasehold.EventKind, path string, term int) leasehold.Event {
	t.Helper()
	var got leasehold.Event
	poll(t, string(kind)+" on "+path, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, ev := range e.list {
			if ev.Kind == kind && ev.Path == path && ev.Term >= term {
				got = ev
				return true
			}
		}
		return false
	})
	return got
}

// live is a runtime running a tree, with its metrics and debug server.
type live struct {
	rt      *leasehold.Runtime
	metrics *Metrics
	server  *Server
	http    *httptest.Server
	events  *events
	reg     *prometheus.Registry
}

// start runs tree on client as node id until the test ends, with metrics
// and a debug server wired as the scheduler binary wires them.
func start(t *testing.T, client *clientv3.Client, tree *leasehold.Node, id string, opts Options, reacquire leasehold.BackoffRange) *live {
	t.Helper()
	l := &live{events: &events{}, reg: prometheus.NewRegistry()}
	rt, err := leasehold.New(client, tree, leasehold.Options{
		NodeID: id, Logger: quiet, Reacquire: reacquire,
		OnEvent: func(e leasehold.Event) {
			l.metrics.Observe(e)
			l.server.Observe(e)
			l.events.on(e)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l.rt = rt
	l.metrics = NewMetrics(l.reg, rt)
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	opts.Gatherer = l.reg
	l.server = New(rt, opts)
	l.http = serve(t, l.server)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	return l
}

// poll waits until cond holds, for at most 30s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches url, failing the test on a transport error.
func get(t *testing.T, url string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// tree fetches /debug/tree.json.
func tree(t *testing.T, base string) leasehold.Snapshot {
	t.Helper()
	code, _, body := get(t, base+"/debug/tree.json")
	if code != http.StatusOK {
		t.Fatalf("tree.json: %d %s", code, body)
	}
	var s leasehold.Snapshot
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("tree.json: %v\n%s", err, body)
	}
	return s
}

// find returns the node at path.
func find(s leasehold.Snapshot, path string) (leasehold.NodeSnapshot, bool) {
	var walk func(n leasehold.NodeSnapshot) (leasehold.NodeSnapshot, bool)
	walk = func(n leasehold.NodeSnapshot) (leasehold.NodeSnapshot, bool) {
		if n.Path == path {
			return n, true
		}
		for _, c := range n.Children {
			if f, ok := walk(c); ok {
				return f, true
			}
		}
		return leasehold.NodeSnapshot{}, false
	}
	return walk(s.Tree)
}

func mustFind(t *testing.T, s leasehold.Snapshot, path string) leasehold.NodeSnapshot {
	t.Helper()
	n, ok := find(s, path)
	if !ok {
		t.Fatalf("no node %q in the tree", path)
	}
	return n
}

// scrape fetches /metrics as a map from series (name{labels}, as
// exposed) to value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	code, _, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// revoke revokes the lease whose hex id a snapshot shows.
func revoke(t *testing.T, c *clientv3.Client, hexID string) {
	t.Helper()
	id, err := strconv.ParseInt(hexID, 16, 64)
	if err != nil {
		t.Fatalf("lease id %q: %v", hexID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Revoke(ctx, clientv3.LeaseID(id)); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("revoke %s: %v", hexID, err)
	}
}

// block is a service that runs until stopped.
func block(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
