package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/etcdtest"
)

// etcdctl's --user and --password reach etcd: wrong credentials give one
// line and exit 1; right ones run a node, which stops cleanly on SIGTERM.
func TestEtcdAuthFlags(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client(t)
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "s3cret-pass"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "root"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("enabling auth: %v", err)
		}
	}
	base := []string{"--endpoints", srv.Endpoint, "--debug-addr", "", "--log-format", "json", "--ttl", "2s", "--prefix", "/auth"}

	var stderr strings.Builder
	if code := run(append(base, "--user", "root:wrong"), os.Stdout, &stderr); code != exitFailure ||
		!strings.Contains(stderr.String(), "cannot reach etcd") || !strings.Contains(stderr.String(), "authentication failed") {
		t.Errorf("wrong password: exit %d, %q; want exit %d naming the authentication failure", code, stderr.String(), exitFailure)
	}

	cmd := exec.Command(os.Args[0], append(base, "--user", "root", "--password", "s3cret-pass")...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	elected := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(logs)
		for s.Scan() {
			if strings.Contains(s.Text(), `"msg":"elected"`) {
				elected <- true
			}
		}
		close(elected)
	}()
	select {
	case ok := <-elected:
		if !ok {
			t.Fatal("the node exited before it was elected")
		}
	case <-time.After(time.Minute):
		t.Fatal("the node was not elected with the right credentials")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range elected {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}
