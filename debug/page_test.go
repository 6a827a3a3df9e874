package debug

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
)

const chromiumPath = "/usr/bin/chromium"

// screenshotEnv, when set, is where TestPageFollowsLeadership also saves its
// last screenshot (the README's docs/debug-tree.png):
//
//	LEASEHOLD_SCREENSHOT=$PWD/docs/debug-tree.png go test ./debug -run TestPage
const screenshotEnv = "LEASEHOLD_SCREENSHOT"

// browser starts a headless Chromium for the test, or skips the test when
// none is installed outside CI.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("%s not found: install Debian's chromium (apt-get install chromium) to run the page test", chromiumPath)
		}
		t.Fatalf("%s not found; .ci/run installs it: %v", chromiumPath, err)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1180, 640),
	}, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// schedulerTree is a tree shaped like the scheduler's: a registry lease
// holding an election (the scheduler) and a runner lease whose assignments
// service adds units at run time: one runs, one keeps failing and backs
// off, one has finished.
func schedulerTree(prefix, node string) *leasehold.Node {
	slot := time.Now().UTC().Truncate(time.Minute)
	unit := func(task string, slot time.Time) string {
		return "unit:" + task + ":" + slot.Format("20060102T150405Z")
	}
	return leasehold.Lease("registry", leasehold.TTL(3*time.Second), leasehold.Key(prefix+"/nodes/"+node),
		leasehold.Election("election", prefix+"/leader", leasehold.TTL(3*time.Second),
			leasehold.Func("scheduler", block)),
		leasehold.Lease("runner", leasehold.TTL(3*time.Second), leasehold.Key(prefix+"/runners/"+node),
			leasehold.Func("assignments", func(ctx context.Context) error {
				g := leasehold.GroupOf(ctx)
				for _, u := range []*leasehold.Node{
					leasehold.Func(unit("report", slot), block),
					leasehold.Func(unit("backup", slot), func(ctx context.Context) error {
						select {
						case <-time.After(700 * time.Millisecond):
							return errors.New("exit status 3: rsync: connection refused (111) while syncing /var/backups")
						case <-ctx.Done():
							return nil
						}
					}, leasehold.Backoff(1500*time.Millisecond, 1500*time.Millisecond)),
					leasehold.Func(unit("cleanup", slot.Add(-time.Minute)), func(ctx context.Context) error {
						return suture.ErrDoNotRestart
					}),
				} {
					if err := g.Add(u); err != nil {
						return err
					}
				}
				return block(ctx)
			})),
	)
}

// The page, in a real headless Chromium, shows the node's leadership with
// its token; when the leadership moves to another node and back, the page
// follows without a reload.
func TestPageFollowsLeadership(t *testing.T) {
	ctx := browser(t)
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	const prefix = "/pagetest"
	a := start(t, c, schedulerTree(prefix, "node-a"), "node-a", Options{}, leasehold.BackoffRange{})
	poll(t, "node-a leading", func() bool { return mustFind(t, tree(t, a.http.URL), "registry/election").Role == "leader" })
	b := start(t, c, schedulerTree(prefix, "node-b"), "node-b", Options{}, leasehold.BackoffRange{})
	poll(t, "node-b campaigning behind node-a", func() bool {
		el := mustFind(t, tree(t, b.http.URL), "registry/election")
		return el.Role == "candidate" && el.Leader == "node-a"
	})
	first := mustFind(t, tree(t, a.http.URL), "registry/election")

	const election = `document.querySelector('.node[data-path="registry/election"]')`
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("the page never showed %s (%s): %v", what, expr, err)
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
	shot := func(name string) []byte {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
		return png
	}

	run("load the page", chromedp.EmulateViewport(1180, 640), chromedp.Navigate(a.http.URL+"/debug/tree"))
	waitFor("the leader badge", election+`?.dataset.role === 'leader' && `+election+`.querySelector('.badge.leader')?.textContent.includes('token `+strconv.FormatInt(first.Token, 10)+`')`)
	waitFor("a live stream", `document.getElementById('conn').dataset.status === 'live'`)
	loaded := eval(`String(window.leasehold.loadedAt)`)
	shot("leader.png")

	// node-a's election lease is revoked: node-b takes over, node-a
	// campaigns again behind it.
	revoke(t, c, first.LeaseID)
	waitFor("node-a as a candidate behind node-b", election+`?.dataset.role === 'candidate' && `+election+`.dataset.leader === 'node-b' && `+election+`.querySelector('.badge.candidate')?.textContent.includes('node-b')`)
	shot("candidate.png")

	// node-b's is revoked: node-a leads again, with a larger token.
	bEl := mustFind(t, tree(t, b.http.URL), "registry/election")
	if bEl.Role != "leader" {
		t.Fatalf("node-b is %s, not leader", bEl.Role)
	}
	revoke(t, c, bEl.LeaseID)
	waitFor("node-a leading again with a larger token", election+`?.dataset.role === 'leader' && Number(`+election+`.dataset.token) > `+strconv.FormatInt(bEl.Token, 10))
	if now := eval(`String(window.leasehold.loadedAt)`); now != loaded {
		t.Fatalf("the page reloaded (loadedAt %s, then %s)", loaded, now)
	}
	badge := eval(election + `.querySelector('.badge.leader').textContent`)
	want := mustFind(t, tree(t, a.http.URL), "registry/election").Token
	if badge != fmt.Sprintf("★ LEADER · token %d", want) || want <= bEl.Token || want <= first.Token {
		t.Errorf("badge %q; node-a's token is %d, after node-b's %d and node-a's first %d", badge, want, bEl.Token, first.Token)
	}
	waitFor("the failing unit in backoff, its error shown", `[...document.querySelectorAll('.node[data-state="backoff"] .error')].some(e => e.title.includes('rsync'))`)
	png := shot("leader-again.png")
	if dst := os.Getenv(screenshotEnv); dst != "" {
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", dst)
	}
}
