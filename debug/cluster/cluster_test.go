package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "0123456789abcdef-cluster"

func snap(node string) leasehold.Snapshot {
	return leasehold.Snapshot{Node: node, At: time.Now(), Tree: leasehold.NodeSnapshot{
		Name: "registry", Path: "registry", Kind: leasehold.KindLease, State: leasehold.StateHeld, Held: true, HeldUntilMs: 1500, TTLMillis: 2000,
		Children: []leasehold.NodeSnapshot{{Name: "election", Path: "registry/election", Kind: leasehold.KindElection, Prefix: "/ct/leader",
			State: leasehold.StateLeading, Role: "leader", Token: 7, Held: true, HeldUntilMs: 1400, Children: []leasehold.NodeSnapshot{}}},
	}}
}

// endpoint serves a tree.json for node behind the token and counts fetches.
func endpoint(t *testing.T, node string, hits *atomic.Int64) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "401", http.StatusUnauthorized)
			return
		}
		hits.Add(1)
		_ = json.NewEncoder(w).Encode(snap(node))
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func register(t *testing.T, c *clientv3.Client, lease clientv3.LeaseID, id, value string) {
	t.Helper()
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	if _, err := c.Put(context.Background(), "/ct/nodes/"+id, value, opts...); err != nil {
		t.Fatal(err)
	}
}

func byID(v View) map[string]Node {
	m := map[string]Node{}
	for _, n := range v.Nodes {
		m[n.ID] = n
	}
	return m
}

// One view shows every registered node with the right status: its own
// tree, a fetched tree, a blackholed endpoint, a redirect, a bad URL, an
// older node's plain value, a key without a lease; the leader and its
// token; and a node whose registration vanished as gone.
func TestViewShowsEveryNode(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	lease, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	bLease, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	redirect := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/latest/meta-data", http.StatusFound))
	defer redirect.Close()
	started := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	register(t, c, lease.ID, "a", Member{ID: "a", DebugURL: "http://127.0.0.1:1", Version: "v1.2.3", Started: started}.Encode())
	register(t, c, bLease.ID, "b", Member{ID: "b", DebugURL: endpoint(t, "b", &hits)}.Encode())
	register(t, c, lease.ID, "c", Member{ID: "c", DebugURL: etcdtest.Blackhole(t)}.Encode())
	register(t, c, lease.ID, "d", Member{ID: "d", DebugURL: redirect.URL}.Encode())
	register(t, c, lease.ID, "e", Member{ID: "e", DebugURL: "file:///etc/passwd"}.Encode())
	register(t, c, lease.ID, "f", "f")
	register(t, c, 0, "g", Member{ID: "g"}.Encode())
	if _, err := c.Put(ctx, "/ct/leader/694d", "b", clientv3.WithLease(bLease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/ct/leader/694e", "a", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	token7, err := c.Get(ctx, "/ct/leader/694d")
	if err != nil {
		t.Fatal(err)
	}

	cl, err := New(Options{Client: c, Members: "/ct/nodes/", Elections: []string{"/ct/leader"}, Self: "a",
		Local: func() leasehold.Snapshot { return snap("a") }, Token: token, Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := cl.View(ctx)
	nodes := byID(v)
	for id, want := range map[string]struct{ status, err string }{
		"a": {StatusUp, ""},
		"b": {StatusUp, ""},
		"c": {StatusUnreachable, "no answer"},
		"d": {StatusUnreachable, "redirect"},
		"e": {StatusUnreachable, "use http:// or https://"},
		"f": {StatusNoEndpoint, ""},
		"g": {StatusGone, "no lease"},
	} {
		n := nodes[id]
		if n.Status != want.status || !strings.Contains(n.Error, want.err) || (want.err == "" && n.Error != "") {
			t.Errorf("node %s: %s %q; want %s %q", id, n.Status, n.Error, want.status, want.err)
		}
	}
	if a := nodes["a"]; a.Version != "v1.2.3" || !a.Started.Equal(started) || a.Tree == nil || a.Tree.Node != "a" {
		t.Errorf("node a: %+v", a)
	}
	if b := nodes["b"]; b.Tree == nil || b.Tree.Node != "b" || len(b.Leads) != 1 || b.Leads[0] != "/ct/leader" || b.LeaseTTLMs <= 0 {
		t.Errorf("node b: %+v", b)
	}
	if len(v.Elections) != 1 {
		t.Fatalf("elections: %+v", v.Elections)
	}
	if e := v.Elections[0]; e.Leader != "b" || e.Token != token7.Kvs[0].CreateRevision || e.SafetyLeftMs != 1400 || len(e.Candidates) != 1 || e.Candidates[0] != "a" {
		t.Errorf("election: %+v", e)
	}
	var out bytes.Buffer
	if err := Render(&out, v, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LEADER b token", "node c  unreachable", "node g  gone", "└── election"} {
		if !strings.Contains(out.String(), want) && !strings.Contains(out.String(), strings.ReplaceAll(want, "  ", " ")) {
			t.Errorf("Render lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("Render:\n%s", out.String())

	// b's lease goes: b is gone, and so is its leadership.
	if _, err := c.Revoke(ctx, bLease.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		v = cl.View(ctx)
		if b := byID(v)["b"]; b.Status == StatusGone && !b.GoneSince.IsZero() && v.Elections[0].Leader == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never gone: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// However many viewers ask, a node's tree is fetched at most once per
// Interval.
func TestFanOutIsBounded(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	lease, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	register(t, c, lease.ID, "b", Member{ID: "b", DebugURL: endpoint(t, "b", &hits)}.Encode())
	const interval = 200 * time.Millisecond
	cl, err := New(Options{Client: c, Members: "/ct/nodes/", Token: token, Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 3*interval {
				if n := byID(cl.View(ctx))["b"]; n.Status != StatusUp {
					t.Errorf("b: %+v", n)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	limit := int64(elapsed/interval) + 1
	if got := hits.Load(); got > limit || got < 2 {
		t.Errorf("50 viewers for %s fetched b's tree %d times; want between 2 and %d", elapsed, got, limit)
	}
	t.Logf("50 viewers for %s: %d fetches", elapsed, hits.Load())
}

func TestCheckURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://10.0.0.5:7070":  "http://10.0.0.5:7070",
		"https://node-a:7070/":  "https://node-a:7070",
		"ftp://x":               "use http",
		"http://u:p@x:1":        "user info",
		"http://x:1/debug/tree": "only scheme://host:port",
		"http://x:1?a=b":        "only scheme://host:port",
		"http://":               "no host",
		"javascript:alert(1)":   "use http",
	} {
		got, err := CheckURL(raw)
		if (err == nil && got != want) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	if m := ParseMember("x", []byte("plain-id")); m.ID != "plain-id" || m.DebugURL != "" {
		t.Errorf("plain value: %+v", m)
	}
	if m := ParseMember("x", []byte(`{"debug_url":"http://a:1"}`)); m.ID != "x" || m.DebugURL != "http://a:1" {
		t.Errorf("JSON without id: %+v", m)
	}
}
