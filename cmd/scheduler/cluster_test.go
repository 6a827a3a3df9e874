package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/debug/cluster"
	"github.com/leasehold/leasehold/internal/etcdtest"
)

const chromiumPath = "/usr/bin/chromium"

// clusterShotEnv, when set, is where TestClusterPage saves its screenshot
// (docs/debug-cluster.png):
//
//	LEASEHOLD_CLUSTER_SCREENSHOT=$PWD/../../docs/debug-cluster.png go test ./cmd/scheduler -run TestClusterPage
const clusterShotEnv = "LEASEHOLD_CLUSTER_SCREENSHOT"

// browser starts a headless Chromium for the test, or skips the test when
// none is installed outside CI.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("%s not found: install Debian's chromium to run the page test", chromiumPath)
		}
		t.Fatalf("%s not found: %v", chromiumPath, err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// debugNode is a scheduler process with its debug endpoint on.
type debugNode struct {
	*node
	addr string
}

func startDebugNode(t *testing.T, id, endpoint, prefix, tasksFile, logDir string) *debugNode {
	t.Helper()
	addr := freePort(t)
	n := spawnNode(t, id, logDir, []string{debugTokenEnv + "=" + testToken}, "--endpoints", endpoint, "--node-id", id, "--prefix", prefix,
		"--ttl", "2s", "--tasks", tasksFile, "--debug-addr", addr, "--log-format", "json")
	return &debugNode{node: n, addr: addr}
}

func leaderUnder(t *testing.T, c *clientv3.Client, prefix string) string {
	t.Helper()
	resp, err := c.Get(context.Background(), prefix+"/leader/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// Three scheduler processes and a registered node whose endpoint never
// answers. The cluster page of one node, in a real headless Chromium, shows
// all three up with the leader and the blackholed node unreachable; it
// follows a step-down to a named node and then a SIGKILL of the leader
// (new leader, dead node gone) without a reload. "scheduler tree
// --cluster" prints the same.
func TestClusterPage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts scheduler processes and a browser")
	}
	ctx := browser(t)
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	const prefix = "/clustertest"
	dir := t.TempDir()
	tasksFile := filepath.Join(dir, "tasks.yaml")
	if err := os.WriteFile(tasksFile, []byte("tasks:\n  - name: tick\n    schedule: \"@every 1s\"\n    command: 'true'\n  - name: flaky\n    schedule: \"@every 2s\"\n    command: 'exit 3'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*debugNode{}
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes[id] = startDebugNode(t, id, srv.Endpoint, prefix, tasksFile, dir)
	}
	lease, err := c.Grant(context.Background(), 120)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(context.Background(), prefix+"/nodes/hung", cluster.Member{ID: "hung", DebugURL: etcdtest.Blackhole(t), Version: "v0.0.0-test"}.Encode(), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	var leader string
	poll(t, "a leader", func() bool { leader = leaderUnder(t, c, prefix); return leader != "" })
	// The page is served by a node that will neither step down nor die.
	var viewer, target string
	for _, id := range []string{"n1", "n2", "n3"} {
		switch {
		case id == leader:
		case viewer == "":
			viewer = id
		default:
			target = id
		}
	}
	poll(t, "every node campaigning", func() bool {
		resp, err := c.Get(context.Background(), prefix+"/leader/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 3
	})

	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Minute))); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
			t.Fatalf("the page never showed %s (%s): %v\npage:\n%s", what, expr, err, html)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	row := func(id, status string) string {
		return fmt.Sprintf(`document.querySelector('tr.node[data-node="%s"]')?.dataset.status === '%s'`, id, status)
	}
	leads := func(id string) string {
		return fmt.Sprintf(`document.querySelector('.election[data-prefix="%s/leader"]')?.dataset.leader === '%s' && document.querySelector('tr.node[data-node="%s"]')?.dataset.leads === '%s/leader'`, prefix, id, id, prefix)
	}
	// The browser sends the token; the viewer forwards it to the other
	// nodes.
	bearer := chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Bearer " + testToken}})
		return chromedp.Void{}, err
	})
	if err := chromedp.Do(ctx, bearer, chromedp.EmulateViewport(1280, 900), chromedp.Navigate("http://"+nodes[viewer].addr+"/debug/cluster")); err != nil {
		t.Fatal(err)
	}
	waitFor("all three nodes up", row("n1", "up")+" && "+row("n2", "up")+" && "+row("n3", "up"))
	waitFor("the leader", leads(leader))
	waitFor("the blackholed node unreachable", row("hung", "unreachable"))
	waitFor("a live stream", `document.getElementById('conn').dataset.status === 'live'`)
	waitFor("three trees", `document.querySelectorAll('.ctree').length === 3`)
	waitFor("the tasks", `document.querySelector('tr[data-task="tick"]') !== null`)
	loaded := eval(`String(window.leasehold.loadedAt)`)

	if resp, err := http.Get("http://" + nodes[viewer].addr + "/debug/cluster.json"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("cluster.json without the token: %v %v; want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"tree", "--cluster", "--addr", nodes[viewer].addr, "--token", testToken, "--color", "never"}, &out, &errOut); code != exitOK {
		t.Fatalf("tree --cluster: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"LEADER " + leader + " token", "node hung  unreachable", "node " + viewer + "    up", "task tick (@every 1s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tree --cluster lacks %q:\n%s", want, out.String())
		}
	}

	// step-down to a named node: leadership moves there, the page follows.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"step-down", "--endpoints", srv.Endpoint, "--prefix", prefix, "--to", target}, &out, &errOut); code != exitOK {
		t.Fatalf("step-down --to %s: exit %d: %s%s", target, code, out.String(), errOut.String())
	}
	t.Logf("step-down: %s", strings.TrimSpace(out.String()))
	if !strings.Contains(out.String(), "leadership moved from "+leader) || !strings.Contains(out.String(), "to "+target) {
		t.Errorf("step-down printed %q", out.String())
	}
	waitFor("the new leader after step-down", leads(target))
	if got := leaderUnder(t, c, prefix); got != target {
		t.Errorf("leader after step-down: %q; want %q", got, target)
	}

	// SIGKILL the new leader: the other live node leads, the dead one is
	// gone, all without a reload.
	if err := nodes[target].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor("the killed node gone", row(target, "gone"))
	waitFor("a new leader after the kill", fmt.Sprintf(`(%s) || (%s)`, leads(viewer), leads(leader)))
	waitFor("the survivors up", row(viewer, "up")+" && "+row(leader, "up"))
	if now := eval(`String(window.leasehold.loadedAt)`); now != loaded {
		t.Fatalf("the page reloaded (loadedAt %s, then %s)", loaded, now)
	}
	if !strings.Contains(eval(`document.querySelector('tr.node[data-node="hung"] .err').textContent`), "no answer") {
		t.Errorf("the hung node's error does not say it did not answer")
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if dst := os.Getenv(clusterShotEnv); dst != "" {
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", dst)
	}
}

// step-down refuses, with one clear line and no request written, when
// nobody leads, when the leader is the only candidate, or when --to names a
// node that is not campaigning; bad flags are usage errors.
func TestStepDownRefusals(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	const prefix = "/refusals"
	stepDown := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"step-down", "--endpoints", srv.Endpoint, "--prefix", prefix, "--timeout", "10s"}, args...), &stdout, &stderr)
		return code, strings.TrimSpace(stderr.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--stay-out", "-1s"}, "--stay-out -1s: use a positive duration"},
		{[]string{"--timeout", "0s"}, "--timeout 0s: use a positive duration"},
		{[]string{"n2"}, `unexpected argument "n2"`},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
	} {
		if code, msg := stepDown(tc.args...); code != exitUsage || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 0 {
			t.Errorf("%q: exit %d, %q; want %d and one line with %q", tc.args, code, msg, exitUsage, tc.want)
		}
	}
	if code, msg := stepDown(); code != exitFailure || !strings.Contains(msg, "nobody leads under /refusals/leader/") {
		t.Errorf("no leader: exit %d, %q", code, msg)
	}
	ctx := context.Background()
	lease, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, prefix+"/leader/1", "solo", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if code, msg := stepDown(); code != exitFailure || !strings.Contains(msg, "solo is the only candidate") {
		t.Errorf("lone leader: exit %d, %q", code, msg)
	}
	if _, err := c.Put(ctx, prefix+"/leader/2", "other", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if code, msg := stepDown("--to", "ghost"); code != exitFailure || !strings.Contains(msg, "--to ghost: ghost is not campaigning") {
		t.Errorf("unknown successor: exit %d, %q", code, msg)
	}
	if code, msg := stepDown("--to", "solo"); code != exitFailure || !strings.Contains(msg, "solo already leads") {
		t.Errorf("successor already leading: exit %d, %q", code, msg)
	}
	if resp, err := c.Get(ctx, prefix+"/step-down"); err != nil || resp.Count != 0 {
		t.Errorf("a refused step-down left a request: %v %v", resp, err)
	}
}
