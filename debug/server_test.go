package debug

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold"

	"github.com/prometheus/client_golang/prometheus"
)

// fixed is a Source whose snapshot the test sets.
type fixed struct {
	mu sync.Mutex
	s  leasehold.Snapshot
}

func (f *fixed) Snapshot() leasehold.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fixed) set(change func(*leasehold.Snapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.s)
}

func newFixed() *fixed { return &fixed{s: sample()} }

func staticServer(t *testing.T, opts Options) (*fixed, *Server, string) {
	t.Helper()
	src := newFixed()
	reg := prometheus.NewRegistry()
	NewMetrics(reg, src)
	opts.Gatherer, opts.Logger = reg, quiet
	s := New(src, opts)
	return src, s, serve(t, s).URL
}

func do(t *testing.T, method, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp, b.String()
}

var paths = []string{"/", "/debug/tree", "/debug/tree.json", "/debug/tree/live.js", "/debug/tree/app.js", "/debug/tree/style.css",
	"/metrics", "/livez", "/readyz", "/readyz?verbose", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"}

// Every path answers GET and HEAD, unknown paths 404, other methods 405.
func TestRoutes(t *testing.T) {
	_, _, base := staticServer(t, Options{})
	for _, p := range paths {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if resp, body := do(t, m, base+p); resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %d %s", m, p, resp.StatusCode, body)
			}
		}
	}
	for _, p := range []string{"/nope", "/debug/tree.jso", "/debug/tree/nope.js", "/debug/trees", "/metricsx", "/debug/pprof/nope"} {
		if resp, _ := do(t, http.MethodGet, base+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d; want 404", p, resp.StatusCode)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, p := range []string{"/debug/tree.json", "/debug/tree", "/metrics", "/readyz", "/debug/pprof/profile", "/debug/tree/events"} {
			resp, _ := do(t, m, base+p)
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d; want 405", m, p, resp.StatusCode)
			}
			if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") {
				t.Errorf("%s %s: Allow %q", m, p, allow)
			}
		}
	}
}

// With a token, every path needs it (Bearer, or Basic's password); then
// unknown paths and wrong methods still answer 404 and 405.
func TestToken(t *testing.T) {
	const token = "s3cret-token-0123456789"
	_, _, base := staticServer(t, Options{Token: token})
	for _, p := range append(paths, "/nope", "/debug/tree/events") {
		for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer " + token + "x"},
			{"Authorization", "Bearer " + token[:len(token)-1]}, {"Authorization", "Basic " + token}, {"Authorization", token}} {
			resp, _ := do(t, http.MethodGet, base+p, h...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s with %q: %d; want 401", p, h, resp.StatusCode)
			}
			if got := resp.Header.Values("WWW-Authenticate"); len(got) == 0 || !strings.HasPrefix(got[0], "Bearer ") {
				t.Errorf("GET %s: WWW-Authenticate %q", p, got)
			}
		}
	}
	for _, p := range paths {
		if resp, body := do(t, http.MethodGet, base+p, "Authorization", "Bearer "+token); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the token: %d %s", p, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/debug/tree.json", nil)
	req.SetBasicAuth("anyone", token)
	if resp, err := httpClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("Basic auth with the token as password: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, _ := do(t, http.MethodGet, base+"/nope", "Authorization", "Bearer "+token); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path with the token: %d; want 404", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodPost, base+"/debug/tree.json", "Authorization", "Bearer "+token); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST with the token: %d; want 405", resp.StatusCode)
	}
}

// The JSON carries the field names outside tools rely on.
func TestTreeJSONSchema(t *testing.T) {
	_, _, base := staticServer(t, Options{})
	code, h, body := get(t, base+"/debug/tree.json")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", code, h.Get("Content-Type"))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node", "at", "tree"} {
		if _, ok := top[k]; !ok {
			t.Errorf("no top-level %q", k)
		}
	}
	var at string
	_ = json.Unmarshal(top["at"], &at)
	if _, err := time.Parse(time.RFC3339, at); err != nil {
		t.Errorf("at %q is not RFC 3339: %v", at, err)
	}
	var nodes []map[string]json.RawMessage
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var n map[string]json.RawMessage
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		var kids []json.RawMessage
		_ = json.Unmarshal(n["children"], &kids)
		for _, k := range kids {
			walk(k)
		}
	}
	walk(top["tree"])
	want := map[string][]string{
		"lease":    {"name", "kind", "state", "children", "lease_id", "ttl_ms", "held_until_ms", "term", "since"},
		"election": {"name", "kind", "state", "children", "lease_id", "ttl_ms", "held_until_ms", "term", "role", "token", "leader"},
		"service":  {"name", "kind", "state", "children", "restarts", "since"},
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		var kind string
		_ = json.Unmarshal(n["kind"], &kind)
		seen[kind] = true
		for _, f := range want[kind] {
			if _, ok := n[f]; !ok {
				t.Errorf("%s node %s lacks %q", kind, n["name"], f)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("kinds seen: %v", seen)
	}
	if !strings.Contains(body, `"last_error": "exit status 3`) {
		t.Errorf("no last_error in %s", body)
	}
}

// /livez and /readyz answer as Kubernetes' do; readyz follows the root
// lease.
func TestHealth(t *testing.T) {
	src, _, base := staticServer(t, Options{})
	for _, c := range []struct{ path, want string }{
		{"/livez", "ok"},
		{"/livez?verbose", "[+]ping ok\nlivez check passed\n"},
		{"/readyz", "ok"},
		{"/readyz?verbose", "[+]root-lease ok\nreadyz check passed\n"},
	} {
		code, h, body := get(t, base+c.path)
		if code != http.StatusOK || body != c.want || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s: %d %q; want 200 %q", c.path, code, body, c.want)
		}
	}
	src.set(func(s *leasehold.Snapshot) {
		s.Tree.State, s.Tree.Held, s.Tree.LastError = leasehold.StateAcquiring, false, "context deadline exceeded\nmore"
	})
	for _, p := range []string{"/readyz", "/readyz?verbose"} {
		code, _, body := get(t, base+p)
		want := "[-]root-lease failed: lease \"registry\" is acquiring (last error: context deadline exceeded)\nreadyz check failed\n"
		if code != http.StatusServiceUnavailable || body != want {
			t.Errorf("GET %s: %d %q; want 503 %q", p, code, body, want)
		}
	}
	// An election root is ready only while it leads.
	src.set(func(s *leasehold.Snapshot) {
		s.Tree = s.Tree.Children[0]
		s.Tree.State, s.Tree.Role = leasehold.StateCampaigning, "candidate"
	})
	if code, _, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("candidate root: %d %q; want 503", code, body)
	}
}

// The page and its assets are served from the binary, with a CSP that
// allows nothing from elsewhere.
func TestPageAssets(t *testing.T) {
	_, _, base := staticServer(t, Options{})
	for p, ct := range map[string]string{"/debug/tree": "text/html", "/debug/tree/live.js": "text/javascript", "/debug/tree/app.js": "text/javascript", "/debug/tree/style.css": "text/css"} {
		code, h, body := get(t, base+p)
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), ct) || len(body) < 100 {
			t.Errorf("GET %s: %d %q %d bytes", p, code, h.Get("Content-Type"), len(body))
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: CSP %q", p, h.Get("Content-Security-Policy"))
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to an external URL", p)
		}
	}
}

// readEvent reads one server-sent event's data.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			if data != "" {
				return data
			}
			continue
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data += d
		}
	}
}

// The stream sends a snapshot at once, another soon after an event, and
// refuses streams beyond MaxStreams.
func TestEventStream(t *testing.T) {
	src, s, base := staticServer(t, Options{Interval: time.Hour, MaxStreams: 1})
	resp, err := httpClient.Get(base + "/debug/tree/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	var snap leasehold.Snapshot
	if err := json.Unmarshal([]byte(readEvent(t, r)), &snap); err != nil || snap.Node != "node-a" {
		t.Fatalf("first event: %v %+v", err, snap.Node)
	}
	src.set(func(s *leasehold.Snapshot) { s.Tree.Children[0].Token = 99 })
	start := time.Now()
	s.Observe(leasehold.Event{Kind: leasehold.EventElected})
	if err := json.Unmarshal([]byte(readEvent(t, r)), &snap); err != nil || snap.Tree.Children[0].Token != 99 {
		t.Fatalf("event after Observe: %v token %d", err, snap.Tree.Children[0].Token)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the event-driven snapshot took %v", d)
	}
	if resp2, body := do(t, http.MethodGet, base+"/debug/tree/events"); resp2.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream beyond MaxStreams: %d %q; want 503", resp2.StatusCode, body)
	}
}
