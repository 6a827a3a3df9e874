package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/etcdtest"
)

// A node started with the id of a live node says so at once (naming the
// holder's lease in hex), is not ready, keeps waiting, and takes the id
// once the holder stops.
func TestDuplicateNodeID(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	tasksFile := dir + "/tasks.yaml"
	if err := os.WriteFile(tasksFile, []byte("tasks:\n  - name: tick\n    schedule: \"@every 1h\"\n    command: 'true'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(debugAddr string, logs *syncBuffer) (*exec.Cmd, chan struct{}) {
		cmd := exec.Command(os.Args[0], "--endpoints", srv.Endpoint, "--node-id", "twin", "--prefix", "/dup", "--ttl", "2s",
			"--tasks", tasksFile, "--debug-addr", debugAddr, "--log-format", "json")
		cmd.Env = append(os.Environ(), mainEnv+"=1", "GORACE=atexit_sleep_ms=0", debugTokenEnv+"=")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		})
		return cmd, exited
	}
	var firstLogs, secondLogs syncBuffer
	first, firstExited := start("", &firstLogs)
	waitFor(t, "the first node's registry", func() bool { return strings.Contains(firstLogs.String(), `"scheduler leader"`) })

	addr := freePort(t)
	start(addr, &secondLogs)
	warning := regexp.MustCompile(`"level":"WARN","msg":"node id held by another process; waiting for it".*"holder_lease":"[0-9a-f]+".*"holder_age":"[0-9]+s"`)
	waitFor(t, "the duplicate warning", func() bool { return warning.MatchString(secondLogs.String()) })
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz?verbose")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "/readyz to give the reason", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "held by another process")
	})

	_ = first.Process.Signal(syscall.SIGTERM)
	<-firstExited
	waitFor(t, "the second node to become ready", func() bool { code, _ := readyz(); return code == http.StatusOK })

}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
