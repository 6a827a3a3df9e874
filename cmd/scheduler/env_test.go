package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clearEnv unsets every variable that could configure the scheduler, for
// the test's duration.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") || strings.HasPrefix(name, "ETCDCTL_") {
			t.Setenv(name, "") // restores the old value after the test
			os.Unsetenv(name)
		}
	}
}

// Every flag is read from $LEASEHOLD_<FLAG>, the etcd flags also from
// etcdctl's variables, and the command line wins.
func TestFlagsFromEnvironment(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	pw := dir + "/pw"
	if err := os.WriteFile(pw, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ETCDCTL_ENDPOINTS", "https://etcd-0:2379,https://etcd-1:2379")
	t.Setenv("ETCDCTL_CACERT", "/etc/ca.pem")
	t.Setenv("ETCDCTL_CERT", "/etc/c.pem")
	t.Setenv("ETCDCTL_KEY", "/etc/k.pem")
	t.Setenv("ETCDCTL_USER", "alice")
	t.Setenv("LEASEHOLD_CACERT", "/etc/leasehold-ca.pem") // beats ETCDCTL_CACERT
	t.Setenv("LEASEHOLD_TTL", "5s")
	t.Setenv("LEASEHOLD_DEBUG_ADDR", "")
	t.Setenv("LEASEHOLD_PASSWORD_FILE", pw)
	t.Setenv("LEASEHOLD_NODE_ID", "env-node")
	o, err := parseFlags([]string{"--node-id", "flag-node"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{o.endpoints, o.cacert, o.cert, o.key, o.user, o.password, o.ttl, o.debugAddr, o.nodeID}
	want := []any{"https://etcd-0:2379,https://etcd-1:2379", "/etc/leasehold-ca.pem", "/etc/c.pem", "/etc/k.pem", "alice", "from-file", 5 * time.Second, "", "flag-node"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d: got %v; want %v", i, got[i], want[i])
		}
	}
}

// Secrets come from files; a file and a value for the same secret, or an
// empty file, are errors, as is a bad value in the environment.
func TestSecretFiles(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	tokenFile, empty := dir+"/token", dir+"/empty"
	if err := os.WriteFile(tokenFile, []byte(testToken+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--debug-addr", "0.0.0.0:7070", "--debug-token-file", tokenFile}, io.Discard)
	if err != nil || o.debugToken != testToken {
		t.Fatalf("--debug-token-file: %v, token %q", err, o.debugToken)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--debug-token-file", tokenFile}, map[string]string{debugTokenEnv: testToken}, "--debug-token and --debug-token-file both set"},
		{[]string{"--password", "x", "--password-file", tokenFile}, nil, "--password and --password-file both set"},
		{[]string{"--password-file", empty}, nil, "the file is empty"},
		{[]string{"--password-file", dir + "/nope"}, nil, "--password-file: open"},
		{nil, map[string]string{"LEASEHOLD_TTL": "ten seconds"}, "$LEASEHOLD_TTL: invalid value for --ttl"},
		{nil, map[string]string{"LEASEHOLD_DEBUG_ADDR": "0.0.0.0:7070"}, "is not a loopback address"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q with %v: %v; want %q", tc.args, tc.env, err, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

// -h lists the variable of every flag.
func TestHelpListsVariables(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &stderr); err != flag.ErrHelp {
		t.Fatal(err)
	}
	for _, want := range []string{"--debug-addr: $LEASEHOLD_DEBUG_ADDR\n", "--endpoints: $LEASEHOLD_ENDPOINTS, then $ETCDCTL_ENDPOINTS\n", "--password-file: $LEASEHOLD_PASSWORD_FILE\n"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, stderr.String())
		}
	}
}

// Every LEASEHOLD_* variable the deployment files set is a flag of the
// node (a misspelt one would be ignored, with only a warning).
func TestDeployFilesUseRealVariables(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &help); err != flag.ErrHelp {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../deploy/kubernetes/*.yaml")
	files = append(files, "../../deploy/systemd/scheduler.env", "../../deploy/systemd/leasehold-scheduler.service", "../../Containerfile")
	// Set by the scheduler for task commands, which the ConfigMap's
	// example task prints.
	forCommands := map[string]bool{"LEASEHOLD_NODE": true, "LEASEHOLD_SLOT": true, "LEASEHOLD_TASK": true, "LEASEHOLD_ATTEMPT": true}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range regexp.MustCompile(`\bLEASEHOLD_[A-Z0-9_]+`).FindAllString(string(b), -1) {
			seen++
			if !forCommands[name] && !strings.Contains(help.String(), ": $"+name+"\n") && !strings.Contains(help.String(), ": $"+name+",") {
				t.Errorf("%s: %s sets no flag", f, name)
			}
		}
	}
	if seen < 20 {
		t.Errorf("only %d LEASEHOLD_ variables found in %v", seen, files)
	}
}
