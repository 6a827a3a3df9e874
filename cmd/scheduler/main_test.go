package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/internal/verify/faults"
)

// The test binary doubles as the scheduler binary (and so as its own guard)
// when mainEnv is set, so end-to-end tests need no separate build.
const mainEnv = "SCHEDULER_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(etcdRoleEnv) == "1" {
		m, err := faults.ParseMember(os.Args[1:])
		if err == nil {
			err = faults.RunMember(m)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// Bad flags, an unreadable or invalid tasks file and an unreachable etcd
// give one clear line each and a non-zero exit, and start nothing.
func TestBadInputFailsWithOneLine(t *testing.T) {
	t.Setenv(debugTokenEnv, "") // a token in the environment would allow a public address
	dir := t.TempDir()
	tabs := dir + "/tabs.yaml"
	if err := os.WriteFile(tabs, []byte("tasks:\n\t- name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	invalid := dir + "/invalid.yaml"
	if err := os.WriteFile(invalid, []byte("tasks: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	allBad := dir + "/bad.yaml"
	if err := os.WriteFile(allBad, []byte("tasks:\n  - name: x\n    schedule: nonsense\n    command: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{"short ttl", []string{"--ttl", "1s"}, exitUsage, "--ttl 1s: use whole seconds, at least 2s"},
		{"ttl without a unit", []string{"--ttl", "10"}, exitUsage, "--ttl 10: a duration needs a unit: write 10s"},
		{"grace without a unit", []string{"--grace", "2"}, exitUsage, "--grace 2: a duration needs a unit: write 2s"},
		{"misspelt endpoint scheme", []string{"--endpoints", "htp://127.0.0.1:2379"}, exitUsage, `unknown scheme "htp": use http://, https://, unix:// or unixs://`},
		{"empty endpoint", []string{"--endpoints", "http://a:1,,http://b:1"}, exitUsage, "an endpoint is empty"},
		{"bad log format", []string{"--log-format", "xml"}, exitUsage, `--log-format "xml": use text or json`},
		{"cert without key", []string{"--cert", "c.pem"}, exitUsage, "--cert and --key go together"},
		{"public debug address", []string{"--debug-addr", "0.0.0.0:7070"}, exitUsage, "is not a loopback address"},
		{"all interfaces without a token", []string{"--debug-addr", ":7070"}, exitUsage, "needs --debug-token (or $LEASEHOLD_DEBUG_TOKEN, or --debug-token-file)"},
		{"short debug token", []string{"--debug-token", "short"}, exitUsage, "--debug-token is too short: use at least 16 characters"},
		{"tree: unknown flag", []string{"tree", "--bogus"}, exitUsage, "scheduler tree: flag provided but not defined: -bogus"},
		{"tree: bad colour", []string{"tree", "--color", "pink"}, exitUsage, `--color "pink": use auto, always or never`},
		{"tree: stray argument", []string{"tree", "node-a"}, exitUsage, `unexpected argument "node-a"`},
		{"tree: unreachable node", []string{"tree", "--addr", "127.0.0.1:1"}, exitFailure, "cannot reach the debug endpoint"},
		{"missing tasks file", []string{"--tasks", dir + "/nope.yaml"}, exitUsage, "nope.yaml"},
		{"invalid tasks file", []string{"--tasks", invalid}, exitUsage, "--tasks"},
		{"tab-indented tasks file", []string{"--tasks", tabs}, exitUsage, "line 2 is indented with a tab"},
		{"no valid task", []string{"--tasks", allBad, "--log-format", "json"}, exitUsage, "no valid task"},
		{"unreachable etcd", []string{"--endpoints", "http://127.0.0.1:1", "--debug-addr", "", "--log-format", "json"}, exitFailure, "cannot reach etcd at http://127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d; want %d (stderr %q)", code, tc.code, stderr.String())
			}
			lines := nonLogLines(stderr.String())
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr lines %q; want one line containing %q", lines, tc.want)
			}
		})
	}
}

// nonLogLines drops JSON log records (such as rejected tasks, which are
// logged as they are found) and flag usage text.
func nonLogLines(s string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.HasPrefix(line, "{") || strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "Usage") || line == "" {
			continue
		}
		out = append(out, line)
	}
	return out
}

var _ = etcdtest.Start
