package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold"

	"github.com/leasehold/leasehold/debug"
	"github.com/leasehold/leasehold/internal/etcdtest"
)

const testToken = "0123456789abcdef-test"

// A token lets the endpoint bind off loopback; it comes from the flag or
// the environment.
func TestDebugTokenAllowsAnyAddress(t *testing.T) {
	t.Setenv(debugTokenEnv, "")
	if _, err := parseFlags([]string{"--debug-addr", "0.0.0.0:7070", "--debug-token", testToken}, io.Discard); err != nil {
		t.Errorf("with --debug-token: %v", err)
	}
	t.Setenv(debugTokenEnv, testToken)
	o, err := parseFlags([]string{"--debug-addr", "0.0.0.0:7070"}, io.Discard)
	if err != nil || o.debugToken != testToken {
		t.Errorf("with $%s: %v, token %q", debugTokenEnv, err, o.debugToken)
	}
	for _, addr := range []string{"127.0.0.1:7070", "localhost:7070", "[::1]:7070", "127.0.0.2:7070"} {
		t.Setenv(debugTokenEnv, "")
		if _, err := parseFlags([]string{"--debug-addr", addr}, io.Discard); err != nil {
			t.Errorf("loopback %s without a token: %v", addr, err)
		}
	}
}

// "scheduler tree" prints what debug.Render prints for the node's tree,
// with the token when the endpoint needs one.
func TestTreeCommand(t *testing.T) {
	t.Setenv(debugTokenEnv, "")
	snap := leasehold.Snapshot{Node: "node-a", At: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC), Tree: leasehold.NodeSnapshot{
		Name: "registry", Path: "registry", Kind: leasehold.KindLease, State: leasehold.StateHeld, Held: true,
		LeaseID: "694d8a7e2c1f0a01", TTLMillis: 10000, HeldUntilMs: 9400, Term: 1,
		Children: []leasehold.NodeSnapshot{{Name: "scheduler", Path: "registry/scheduler", Kind: leasehold.KindService, State: leasehold.StateFailed, LastError: "boom", Children: []leasehold.NodeSnapshot{}}},
	}}
	srv := debug.New(debug.SourceFunc(func() leasehold.Snapshot { return snap }), debug.Options{Token: testToken})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer srv.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")

	var want bytes.Buffer
	if err := debug.Render(&want, snap, false); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"tree", "--addr", addr, "--token", testToken}, {"tree", "--addr", ts.URL + "/"}} {
		if len(args) == 3 {
			t.Setenv(debugTokenEnv, testToken)
		}
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitOK || stdout.String() != want.String() {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", args, code, stderr.String(), stdout.String(), want.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"tree", "--addr", addr, "--token", testToken, "--color", "always"}, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), debug.StateColor(leasehold.StateFailed)+"failed") {
		t.Errorf("--color always: exit %d, %q", code, stdout.String())
	}
	t.Setenv(debugTokenEnv, "")
	for token, msg := range map[string]string{"": "401 unauthorized: the endpoint needs a token: pass --token or set LEASEHOLD_DEBUG_TOKEN", testToken + "x": "401 unauthorized: wrong token"} {
		stdout.Reset()
		stderr.Reset()
		code := run([]string{"tree", "--addr", addr, "--token", token}, &stdout, &stderr)
		if code != exitFailure || !strings.Contains(stderr.String(), msg) || stdout.Len() != 0 {
			t.Errorf("token %q: exit %d, stderr %q; want 1 and %q", token, code, stderr.String(), msg)
		}
	}
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The binary serves its tree, metrics and health on --debug-addr, behind
// the token from the environment, and "scheduler tree" reads it.
func TestBinaryServesDebugEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a scheduler process")
	}
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	tasksFile := dir + "/tasks.yaml"
	if err := os.WriteFile(tasksFile, []byte("tasks:\n  - name: tick\n    schedule: \"@every 1s\"\n    command: 'true'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(os.Args[0], "--endpoints", srv.Endpoint, "--node-id", "dbg", "--prefix", "/debugtest", "--ttl", "2s",
		"--tasks", tasksFile, "--debug-addr", addr, "--log-format", "json")
	cmd.Env = append(os.Environ(), mainEnv+"=1", "GORACE=atexit_sleep_ms=0", debugTokenEnv+"="+testToken)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("scheduler exited with %v; logs:\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("scheduler did not stop on SIGTERM")
		}
	}()

	base := "http://" + addr
	fetch := func(path string, token string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := fetch("/readyz", testToken)
		if code == http.StatusOK && body == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz never ok: %d %q; logs:\n%s", code, body, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := fetch("/debug/tree.json", ""); code != http.StatusUnauthorized {
		t.Errorf("tree.json without the token: %d; want 401", code)
	}
	code, metrics := fetch("/metrics", testToken)
	for _, want := range []string{`leasehold_lease_held{path="registry"} 1`, `leasehold_info{node="dbg"} 1`, "go_goroutines ", "process_cpu_seconds_total "} {
		if code != http.StatusOK || !strings.Contains(metrics, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	var out, errOut bytes.Buffer
	deadline = time.Now().Add(30 * time.Second)
	for {
		out.Reset()
		errOut.Reset()
		code := run([]string{"tree", "--addr", addr, "--token", testToken}, &out, &errOut)
		if code == exitOK && strings.Contains(out.String(), "LEADER token") && strings.Contains(out.String(), "└── runner") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduler tree: exit %d, stderr %q, stdout:\n%s", code, errOut.String(), out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("scheduler tree:\n%s", out.String())
	if !strings.Contains(logs.String(), fmt.Sprintf(`"tree":"http://%s/debug/tree"`, addr)) {
		t.Errorf("the endpoint's address is not logged:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
