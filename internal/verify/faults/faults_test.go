package faults_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/internal/verify/faults"
)

// A child role: this test binary re-executed with childEnv set sleeps
// until killed.
const childEnv = "FAULTS_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		fmt.Println("READY child")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestProxy(t *testing.T) {
	srv := etcdtest.Start(t)
	p, err := faults.NewProxy(filepath.Join(shortDir(t), "p.sock"), srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c, err := etcdtest.NewClient(p.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	p.Partition()
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Get(pctx, "k")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get while partitioned: %v; want DeadlineExceeded", err)
	}
	p.Heal()
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := etcdtest.AwaitHealthy(hctx, c); err != nil {
		t.Fatal(err)
	}

	const d = 100 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	if _, err := c.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*d {
		t.Errorf("Get with %s each way took %s", d, took)
	}
	p.Delay(0)
}

// With the target down, a connection through the proxy is refused at once
// (closed), as it would be without the proxy, rather than left hanging.
func TestProxyTargetDown(t *testing.T) {
	ports, err := faults.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faults.NewProxy(filepath.Join(shortDir(t), "p.sock"), fmt.Sprintf("http://127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{p.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err = c.Get(ctx, "k")
	if err == nil {
		t.Fatal("Get through a proxy to nothing succeeded")
	}
}

func TestGroupKillsEverything(t *testing.T) {
	marker := fmt.Sprintf("faults-test-%d", os.Getpid())
	g := faults.NewGroup(marker)
	var procs []*faults.Proc
	for i := range 3 {
		p, err := g.Start(fmt.Sprint("c", i), os.Args[0], []string{"-test.run=^$"}, []string{childEnv + "=1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Ready:
		case <-time.After(30 * time.Second):
			t.Fatal("child not ready")
		}
		procs = append(procs, p)
	}
	if got := faults.Leftovers(marker); len(got) != 3 {
		t.Fatalf("Leftovers = %v; want the 3 children", got)
	}
	// A stopped child must die too.
	if err := procs[0].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	procs[1].Kill()
	if code, sig := procs[1].Exit(); code != -1 || sig != "SIGKILL" {
		t.Errorf("Exit() = %d %q; want -1 SIGKILL", code, sig)
	}
	g.Close()
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("%s alive after Close", p.Name)
		}
	}
	if got := faults.Leftovers(marker); len(got) != 0 {
		t.Errorf("Leftovers after Close = %v", got)
	}
	if _, err := g.Start("late", os.Args[0], nil, nil, nil); !errors.Is(err, faults.ErrClosed) {
		t.Errorf("Start after Close: %v; want ErrClosed", err)
	}
}

func TestMemberArgsRoundTrip(t *testing.T) {
	ms, err := faults.NewCluster("/d", 3, faults.EtcdSettings{TickMs: 10, ElectionMs: 100, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		back, err := faults.ParseMember(m.Args())
		if err != nil || back != m {
			t.Errorf("ParseMember(Args()) = %+v, %v; want %+v", back, err, m)
		}
	}
}
