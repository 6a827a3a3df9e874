package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/internal/verify/faults"
)

// etcdRoleEnv makes the test binary run an etcd member (faults.RunMember).
const etcdRoleEnv = "SCHEDULER_TEST_ETCD"

// A node whose etcd (a real etcd process, production timing) stops for
// about ten seconds holds its leases again soon after etcd is back. The
// time is reported, not asserted: it is a latency, not a correctness bound.
func TestRecoveryAfterEtcdOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops a real etcd for 10s")
	}
	dir, err := os.MkdirTemp("", "rec") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	members, err := faults.NewCluster(dir, 1, faults.EtcdSettings{TickMs: 100, ElectionMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	group := faults.NewGroup("rec-" + strings.TrimPrefix(dir, os.TempDir()+"/"))
	t.Cleanup(group.Close)
	startEtcd := func() *faults.Proc {
		p, err := group.Start("etcd", os.Args[0], members[0].Args(), []string{etcdRoleEnv + "=1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Ready:
		case <-time.After(60 * time.Second):
			t.Fatal("etcd not ready")
		}
		return p
	}
	etcd := startEtcd()
	tasksFile := dir + "/tasks.yaml"
	if err := os.WriteFile(tasksFile, []byte("tasks:\n  - name: tick\n    schedule: \"@every 1s\"\n    command: 'true'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(dir + "/node.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	t.Cleanup(func() {
		if true {
			b, _ := os.ReadFile(dir + "/node.log")
			t.Logf("node log:\n%s", b)
		}
	})
	_, err = group.Start("node", os.Args[0], []string{"--endpoints", members[0].ClientURL, "--node-id", "r1", "--prefix", "/rec",
		"--ttl", "4s", "--tasks", tasksFile, "--debug-addr", "", "--log-format", "json", "--log-level", "debug"},
		[]string{mainEnv + "=1", "GORACE=atexit_sleep_ms=0"}, logFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := etcdtest.NewClient(members[0].ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	// held reports whether the node holds its node and runner keys under
	// leases granted after since (a revision).
	held := func(since int64) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		resp, err := c.Txn(ctx).Then(clientv3.OpGet("/rec/nodes/r1"), clientv3.OpGet("/rec/runners/r1")).Commit()
		if err != nil {
			return false
		}
		for _, r := range resp.Responses {
			kvs := r.GetResponseRange().Kvs
			if len(kvs) != 1 || kvs[0].CreateRevision <= since {
				return false
			}
		}
		return true
	}
	waitFor(t, "the node's keys", func() bool { return held(0) })
	before, err := c.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}

	etcd.Stop(5 * time.Second)
	time.Sleep(10 * time.Second) // the outage itself: nothing to await
	startEtcd()
	back := time.Now()
	// A fresh client: the first one's reconnection backoff grew during
	// the outage and would delay the measurement, not the node.
	c.Close()
	if c, err = etcdtest.NewClient(members[0].ClientURL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node's keys under new leases", func() bool { return held(before.Header.Revision) })
	t.Logf("leases re-acquired %v after etcd was back (etcd down 10s)", time.Since(back).Round(10*time.Millisecond))
}
