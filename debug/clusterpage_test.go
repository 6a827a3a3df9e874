package debug

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// clusterJSON is a ClusterSource returning a fixed view and counting calls.
type clusterJSON struct{ calls atomic.Int64 }

func (c *clusterJSON) ClusterJSON(context.Context) ([]byte, error) {
	c.calls.Add(1)
	return []byte(`{"from":"node-a","nodes":[]}`), nil
}

// The cluster paths are served only with a ClusterSource, behind the
// token, with the page's strict CSP; the stream sends the view as events.
func TestClusterRoutes(t *testing.T) {
	const token = "0123456789abcdef-cluster"
	_, _, without := staticServer(t, Options{})
	if resp, _ := do(t, http.MethodGet, without+"/debug/cluster.json"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without a ClusterSource: %d; want 404", resp.StatusCode)
	}
	if _, index := do(t, http.MethodGet, without+"/"); strings.Contains(index, "/debug/cluster") {
		t.Errorf("the index links the cluster page without a ClusterSource:\n%s", index)
	}

	src := &clusterJSON{}
	_, _, url := staticServer(t, Options{Token: token, Cluster: src})
	bearer := []string{"Authorization", "Bearer " + token}
	if resp, _ := do(t, http.MethodGet, url+"/debug/cluster.json"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("cluster.json without the token: %d; want 401", resp.StatusCode)
	}
	if resp, body := do(t, http.MethodGet, url+"/debug/cluster.json", bearer...); resp.StatusCode != http.StatusOK || body != `{"from":"node-a","nodes":[]}`+"\n" {
		t.Errorf("cluster.json: %d %q", resp.StatusCode, body)
	}
	resp, body := do(t, http.MethodGet, url+"/debug/cluster", bearer...)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "cluster/app.js") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("page: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	for _, asset := range []string{"/debug/cluster/live.js", "/debug/cluster/app.js", "/debug/cluster/style.css", "/debug/cluster/cluster.css"} {
		if resp, _ := do(t, http.MethodGet, url+asset, bearer...); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", asset, resp.StatusCode)
		}
	}

	req, err := http.NewRequest(http.MethodGet, url+"/debug/cluster/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(bearer[0], bearer[1])
	stream, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if ct := stream.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: content type %q", ct)
	}
	sc := bufio.NewScanner(stream.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			if line != `data: {"from":"node-a","nodes":[]}` {
				t.Errorf("event %q", line)
			}
			break
		}
	}
	if src.calls.Load() < 2 {
		t.Errorf("the source was called %d times; want once per request", src.calls.Load())
	}
}
