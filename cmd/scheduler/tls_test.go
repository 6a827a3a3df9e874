package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/leasehold/leasehold/debug"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/internal/testcerts"
)

// tlsSetup is an etcd that serves clients over TLS only and requires a
// client certificate from its CA, with the files a scheduler needs.
type tlsSetup struct {
	endpoint string
	ca       *testcerts.CA
	client   testcerts.Pair // etcd client certificate
	server   testcerts.Pair // certificate for 127.0.0.1 (etcd's, and the debug endpoint's)
	dir      string
}

// serverCert adjusts etcd's own certificate, tweaks its configuration.
func startTLSEtcd(t *testing.T, serverCert testcerts.Options, tweaks ...func(*embed.Config)) *tlsSetup {
	t.Helper()
	dir := t.TempDir()
	s := &tlsSetup{dir: dir, ca: testcerts.NewCA(t, dir, "ca")}
	s.server = s.ca.Issue(t, dir, "server", testcerts.Server, serverCert)
	s.client = s.ca.Issue(t, dir, "client", testcerts.Client, testcerts.Options{})
	srv := etcdtest.Start(t, func(cfg *embed.Config) {
		u := []url.URL{{Scheme: "https", Host: "127.0.0.1:0"}}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = u, u
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: s.server.Cert, KeyFile: s.server.Key, TrustedCAFile: s.ca.File, ClientCertAuth: true}
		for _, tweak := range tweaks {
			tweak(cfg)
		}
	})
	s.endpoint = "https://" + srv.Etcd.Clients[0].Addr().String()
	return s
}

// adminClient is a test's own etcd client over TLS, closed in t.Cleanup
// (before the server, which was started first).
func (s *tlsSetup) adminClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cfg, err := clientConfig(&options{cacert: s.ca.File, cert: s.client.Cert, key: s.client.Key}, []string{s.endpoint})
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startProc starts the test binary as a scheduler node with args and extra
// environment; it is stopped with SIGTERM in t.Cleanup and must exit 0.
func startProc(t *testing.T, logs *syncBuffer, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), mainEnv+"=1", "GORACE=atexit_sleep_ms=0"), env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%v exited with %v; logs:\n%s", args, err, logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%v did not stop on SIGTERM", args)
		}
	})
}

// Two scheduler nodes reach an etcd that requires client certificates, one
// configured by flags, the other by etcdctl's and leasehold's environment
// variables with the token in a file: one is elected, runs complete, and
// "scheduler tree" reads the leader's tree from its HTTPS debug endpoint.
func TestTLSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts scheduler processes")
	}
	t.Setenv(debugTokenEnv, "")
	s := startTLSEtcd(t, testcerts.Options{})
	admin := s.adminClient(t)
	tasksFile := s.dir + "/tasks.yaml"
	if err := os.WriteFile(tasksFile, []byte("tasks:\n  - name: tick\n    schedule: \"@every 1s\"\n    command: 'true'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := s.dir + "/token"
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const prefix = "/tlstest"
	addrs := map[string]string{"tls-a": freePort(t), "tls-b": freePort(t)}
	var logsA, logsB syncBuffer
	startProc(t, &logsA, nil, "--endpoints", s.endpoint, "--cacert", s.ca.File, "--cert", s.client.Cert, "--key", s.client.Key,
		"--node-id", "tls-a", "--prefix", prefix, "--ttl", "2s", "--tasks", tasksFile, "--log-format", "json",
		"--debug-addr", addrs["tls-a"], "--debug-cert", s.server.Cert, "--debug-key", s.server.Key, "--debug-token", testToken)
	startProc(t, &logsB, []string{
		"ETCDCTL_ENDPOINTS=" + s.endpoint, "ETCDCTL_CACERT=" + s.ca.File, "ETCDCTL_CERT=" + s.client.Cert, "ETCDCTL_KEY=" + s.client.Key,
		"LEASEHOLD_NODE_ID=tls-b", "LEASEHOLD_PREFIX=" + prefix, "LEASEHOLD_TTL=2s", "LEASEHOLD_TASKS=" + tasksFile, "LEASEHOLD_LOG_FORMAT=json",
		"LEASEHOLD_DEBUG_ADDR=" + addrs["tls-b"], "LEASEHOLD_DEBUG_CERT=" + s.server.Cert, "LEASEHOLD_DEBUG_KEY=" + s.server.Key,
		"LEASEHOLD_DEBUG_TOKEN_FILE=" + tokenFile,
	})

	var leader string
	poll(t, "a leader over TLS", func() bool {
		resp, err := admin.Get(context.Background(), prefix+"/leader/", clientv3.WithFirstCreate()...)
		if err == nil && len(resp.Kvs) > 0 {
			leader = string(resp.Kvs[0].Value)
		}
		return leader != ""
	})
	poll(t, "runs completed over TLS", func() bool {
		resp, err := admin.Get(context.Background(), prefix+"/runs/", clientv3.WithPrefix())
		return err == nil && strings.Count(kvValues(resp), `"state":"done"`) >= 2
	})
	resp, err := admin.Get(context.Background(), prefix+"/nodes/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || len(resp.Kvs) != 2 {
		t.Fatalf("registered nodes: %v, %v; want both", resp, err)
	}

	// "scheduler tree" over HTTPS, trusting the test CA.
	var out, errOut bytes.Buffer
	poll(t, "scheduler tree showing the leader over HTTPS", func() bool {
		out.Reset()
		errOut.Reset()
		code := run([]string{"tree", "--addr", "https://" + addrs[leader], "--cacert", s.ca.File, "--token", testToken}, &out, &errOut)
		return code == exitOK && strings.Contains(out.String(), "LEADER token")
	})
	t.Logf("scheduler tree of %s:\n%s", leader, out.String())
	// Without the CA the tree command refuses the certificate.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"tree", "--addr", "https://" + addrs[leader], "--token", testToken}, &out, &errOut); code != exitFailure ||
		!strings.Contains(errOut.String(), "certificate") {
		t.Errorf("tree without --cacert: exit %d, %q; want 1 naming the certificate", code, errOut.String())
	}
	// Plain HTTP to an HTTPS endpoint gets no tree.
	if code := run([]string{"tree", "--addr", addrs[leader], "--token", testToken}, &out, &errOut); code != exitFailure {
		t.Errorf("tree over plain HTTP to HTTPS: exit %d; want 1", code)
	}
	for id, logs := range map[string]*syncBuffer{"tls-a": &logsA, "tls-b": &logsB} {
		if !strings.Contains(logs.String(), `"tree":"https://`+addrs[id]+`/debug/tree"`) {
			t.Errorf("%s does not log its HTTPS endpoint:\n%s", id, logs.String())
		}
	}
}

func kvValues(resp *clientv3.GetResponse) string {
	var b strings.Builder
	for _, kv := range resp.Kvs {
		b.Write(kv.Value)
	}
	return b.String()
}

// A wrong CA, an expired client certificate, a key that does not match and
// a client certificate from another CA each give one line and a non-zero
// exit, before anything starts: no key is written to etcd and the debug
// endpoint never listens.
func TestTLSMisconfigurationFailsFast(t *testing.T) {
	t.Setenv(debugTokenEnv, "")
	s := startTLSEtcd(t, testcerts.Options{})
	admin := s.adminClient(t)
	other := testcerts.NewCA(t, s.dir, "other-ca")
	foreign := other.Issue(t, s.dir, "foreign", testcerts.Client, testcerts.Options{})
	expired := s.ca.Issue(t, s.dir, "expired", testcerts.Client, testcerts.Options{Expired: true})
	const prefix = "/tlsbad"
	for _, tc := range []struct {
		name              string
		cacert, cert, key string
		code              int
		want              string
	}{
		{"wrong CA", other.File, s.client.Cert, s.client.Key, exitFailure, "TLS: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"expired certificate", s.ca.File, expired.Cert, expired.Key, exitUsage, "the certificate expired at"},
		{"key does not match", s.ca.File, s.client.Cert, expired.Key, exitUsage, "private key does not match public key"},
		{"client certificate of another CA", s.ca.File, foreign.Cert, foreign.Key, exitFailure, "etcd refused the client certificate"},
		{"no client certificate", s.ca.File, "", "", exitFailure, "etcd requires a client certificate: pass --cert and --key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freePort(t)
			args := []string{"--endpoints", s.endpoint, "--cacert", tc.cacert, "--prefix", prefix, "--ttl", "2s",
				"--log-format", "json", "--debug-addr", addr}
			if tc.cert != "" {
				args = append(args, "--cert", tc.cert, "--key", tc.key)
			}
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := run(args, &stdout, &stderr)
			took := time.Since(start)
			lines := nonLogLines(stderr.String())
			if code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", code, stderr.String(), tc.code, tc.want)
			}
			if strings.Contains(stderr.String(), `"msg":"node starting"`) {
				t.Errorf("the node started:\n%s", stderr.String())
			}
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				t.Errorf("something listens on the debug address %s", addr)
			}
			t.Logf("failed in %v: %s", took.Round(time.Millisecond), strings.Join(lines, ""))
		})
	}
	resp, err := admin.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("keys under %s: %v, %v; want none", prefix, resp, err)
	}

	// etcd's own certificate has expired.
	old := startTLSEtcd(t, testcerts.Options{Expired: true})
	var stdout, stderr bytes.Buffer
	code := run([]string{"--endpoints", old.endpoint, "--cacert", old.ca.File, "--cert", old.client.Cert, "--key", old.client.Key,
		"--prefix", prefix, "--log-format", "json", "--debug-addr", ""}, &stdout, &stderr)
	if lines := nonLogLines(stderr.String()); code != exitFailure || len(lines) != 1 || !strings.Contains(lines[0], "x509: certificate has expired") {
		t.Errorf("etcd's certificate expired: exit %d, stderr %q; want exit 1 and one line naming the expiry", code, stderr.String())
	}

	// With TLS 1.2 the refusal comes during the handshake, not after.
	tls12 := startTLSEtcd(t, testcerts.Options{}, func(cfg *embed.Config) { cfg.TlsMaxVersion = "TLS1.2" })
	stderr.Reset()
	code = run([]string{"--endpoints", tls12.endpoint, "--cacert", tls12.ca.File, "--prefix", prefix, "--log-format", "json", "--debug-addr", ""}, &stdout, &stderr)
	if lines := nonLogLines(stderr.String()); code != exitFailure || len(lines) != 1 || !strings.Contains(lines[0], "etcd requires a client certificate: pass --cert and --key") {
		t.Errorf("TLS 1.2, no client certificate: exit %d, stderr %q; want exit 1 and one line asking for --cert", code, stderr.String())
	}
}

// The debug endpoint's own certificate is checked before anything starts.
func TestDebugCertFlags(t *testing.T) {
	t.Setenv(debugTokenEnv, "")
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	good := ca.Issue(t, dir, "good", testcerts.Server, testcerts.Options{})
	expired := ca.Issue(t, dir, "expired", testcerts.Server, testcerts.Options{Expired: true})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--debug-cert", good.Cert}, "--debug-cert and --debug-key go together"},
		{"expired", []string{"--debug-cert", expired.Cert, "--debug-key", expired.Key}, "--debug-cert/--debug-key " + expired.Cert + ": the certificate expired"},
		{"mismatched key", []string{"--debug-cert", good.Cert, "--debug-key", expired.Key}, "private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// An unreachable etcd: the certificate must be refused first.
			code := run(append(tc.args, "--endpoints", "http://127.0.0.1:1", "--log-format", "json"), &stdout, &stderr)
			lines := nonLogLines(stderr.String())
			if code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", code, stderr.String(), exitUsage, tc.want)
			}
		})
	}
}

// Off loopback, a token served over plain HTTP is warned about; over
// HTTPS, or on loopback, it is not.
func TestDebugTokenInClearIsWarned(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	pair := ca.Issue(t, dir, "debug", testcerts.Server, testcerts.Options{})
	cert, err := loadPair(pair.Cert, pair.Key, "--debug-cert/--debug-key")
	if err != nil {
		t.Fatal(err)
	}
	withTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	for _, tc := range []struct {
		addr string
		tc   *tls.Config
		warn bool
	}{
		{"0.0.0.0:0", nil, true},
		{"0.0.0.0:0", withTLS, false},
		{"127.0.0.1:0", nil, false},
	} {
		var logs syncBuffer
		log := slog.New(slog.NewJSONHandler(&logs, nil))
		dbg := debug.New(debug.SourceFunc(func() leasehold.Snapshot { return leasehold.Snapshot{} }), debug.Options{Token: testToken, Logger: log})
		ln, err := net.Listen("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		serveDebug(ln, tc.addr, true, tc.tc, dbg, log)()
		warned := strings.Contains(logs.String(), `"level":"WARN"`) && strings.Contains(logs.String(), "the bearer token travels in clear")
		if warned != tc.warn {
			t.Errorf("%s, TLS %v: warned %v; want %v; logs:\n%s", tc.addr, tc.tc != nil, warned, tc.warn, logs.String())
		}
	}
}
