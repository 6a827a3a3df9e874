package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/debug/cluster"
	"github.com/leasehold/leasehold/services/guard"
	"github.com/leasehold/leasehold/services/scheduler"
	"github.com/leasehold/leasehold/services/tasks"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // etcd unreachable, a fatal tree error
	exitUsage   = 2 // bad flags or tasks file
	exitForced  = 130
)

// debugTokenEnv holds the debug endpoint's token when --debug-token is not
// given, so that the token need not appear in ps (see env.go).
const debugTokenEnv = envPrefix + "_DEBUG_TOKEN"

// minTokenLen is the shortest debug token accepted.
const minTokenLen = 16

type options struct {
	endpoints, dataDir, nodeID, prefix, tasksFile, debugAddr, debugToken string
	debugURL                                                             string
	logFormat, logLevel                                                  string
	cacert, cert, key, user, password                                    string
	passwordFile, debugTokenFile, debugCert, debugKey                    string
	debugPublicHealth                                                    bool
	unknownEnv                                                           []string // LEASEHOLD_* variables that set nothing
	ttl, grace, keepFor                                                  time.Duration
	keep                                                                 int
}

// parseFlags reads the node's flags, then the environment and the secret
// files, and validates the result; -h prints the usage and returns
// flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := nodeFlags(o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printNodeUsage(fs, stderr)
			return nil, err
		}
		return nil, fmt.Errorf("%v (see -h)", durationHint(err))
	}
	if err := applyEnv(fs, envPrefix, etcdctlEnv); err != nil {
		return nil, err
	}
	o.unknownEnv = unknownEnv(fs)
	if err := secretFromFile(&o.password, "password", o.passwordFile, "password-file"); err != nil {
		return nil, err
	}
	if err := secretFromFile(&o.debugToken, "debug-token", o.debugTokenFile, "debug-token-file"); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: flags only (see -h)", fs.Arg(0))
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// nodeFlags declares the node's flags, with their defaults, into o: the
// one list -h and the environment variables are derived from.
func nodeFlags(o *options) *flag.FlagSet {
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	// Errors are reported by the caller in one line; -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.endpoints, "endpoints", "", "etcd endpoints, comma separated; when empty, start an embedded single-node etcd on 127.0.0.1:2379")
	fs.StringVar(&o.dataDir, "data-dir", "leasehold.etcd", "data directory of the embedded etcd (only without --endpoints)")
	fs.StringVar(&o.nodeID, "node-id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this node's identity, unique in the cluster")
	fs.StringVar(&o.prefix, "prefix", "/leasehold", "etcd key prefix of the scheduler's keys")
	fs.DurationVar(&o.ttl, "ttl", 10*time.Second, "TTL of the node's leases (whole seconds, at least 2s)")
	fs.DurationVar(&o.grace, "grace", 2*time.Second, "how late a slot may start before it counts as missed (see a task's missed:)")
	fs.IntVar(&o.keep, "keep", scheduler.DefaultKeep, "finished run records kept per task; older ones are deleted by the leader")
	fs.DurationVar(&o.keepFor, "keep-for", scheduler.DefaultKeepFor, "how long finished run records are kept, counted from their slot")
	fs.StringVar(&o.tasksFile, "tasks", "", "YAML tasks file; when empty, a small built-in example set runs")
	fs.StringVar(&o.debugAddr, "debug-addr", "127.0.0.1:7070", "address of the read-only debug endpoint (tree, metrics, health, pprof); empty disables it; a non-loopback address needs --debug-token")
	fs.StringVar(&o.debugToken, "debug-token", "", "bearer token the debug endpoint requires on every path (better: $"+debugTokenEnv+" or --debug-token-file, out of ps); required off loopback")
	fs.StringVar(&o.debugTokenFile, "debug-token-file", "", "read --debug-token from this file")
	fs.StringVar(&o.debugCert, "debug-cert", "", "serve the debug endpoint over HTTPS with this certificate (PEM, chain after the leaf)")
	fs.StringVar(&o.debugKey, "debug-key", "", "private key of --debug-cert")
	fs.BoolVar(&o.debugPublicHealth, "debug-public-health", false, "answer /livez and /readyz without the token (status only; the details need it), for probes that cannot send one")
	fs.StringVar(&o.debugURL, "debug-url", "", "URL other nodes and operators reach this node's debug endpoint at, published in its registry key (default http://<debug-addr>, with this host's name when bound to all interfaces)")
	fs.StringVar(&o.logFormat, "log-format", "", "text or json (default: text on a terminal, json otherwise)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.cacert, "cacert", "", "verify etcd's certificate with this CA bundle (etcdctl's flag)")
	fs.StringVar(&o.cert, "cert", "", "client certificate for etcd TLS (etcdctl's flag)")
	fs.StringVar(&o.key, "key", "", "client key for etcd TLS (etcdctl's flag)")
	fs.StringVar(&o.user, "user", "", "etcd user, as name or name:password (etcdctl's flag)")
	fs.StringVar(&o.password, "password", "", "etcd password, when --user has none (etcdctl's flag; better: --password-file)")
	fs.StringVar(&o.passwordFile, "password-file", "", "read --password from this file")
	return fs
}

// printNodeUsage is -h: the subcommands, the node's flags and their
// environment variables.
func printNodeUsage(fs *flag.FlagSet, stderr io.Writer) {
	fmt.Fprintln(stderr, "usage: scheduler [flags]\n"+
		"       scheduler tree [--addr host:port] [--token t]   print a node's live tree (see scheduler tree -h)\n"+
		"       scheduler tree --cluster                        print every node of the cluster\n"+
		"       scheduler status [-o json]                      nodes, leader and tasks, read from etcd\n"+
		"       scheduler runs [--task T] [--failed] [-n N]     run records, newest first, read from etcd\n"+
		"       scheduler step-down [--to NODE]                 move leadership on purpose (see scheduler step-down -h)")
	fs.SetOutput(stderr)
	fs.PrintDefaults()
	fmt.Fprint(stderr, envHelp(fs, envPrefix, etcdctlEnv))
}

// validate checks each value, and the flags that go together, so that a
// bad one is named, with its fix, before anything starts.
func (o *options) validate() error {
	if o.endpoints != "" {
		if err := checkEndpoints(o.endpoints); err != nil {
			return err
		}
	}
	switch {
	case o.logFormat != "" && o.logFormat != "text" && o.logFormat != "json":
		return fmt.Errorf("--log-format %q: use text or json", o.logFormat)
	case o.nodeID == "" || strings.Contains(o.nodeID, "/"):
		return fmt.Errorf("--node-id %q: use a non-empty name without '/'", o.nodeID)
	case (o.cert == "") != (o.key == ""):
		return errors.New("--cert and --key go together: give both or neither")
	case (o.debugCert == "") != (o.debugKey == ""):
		return errors.New("--debug-cert and --debug-key go together: give both or neither")
	case o.keep < 1:
		return fmt.Errorf("--keep %d: keep at least 1 record per task, e.g. --keep 100", o.keep)
	case o.keepFor <= 0:
		return fmt.Errorf("--keep-for %s: use a positive duration such as 168h", o.keepFor)
	case o.grace <= 0:
		return fmt.Errorf("--grace %s: use a positive duration such as 2s", o.grace)
	case o.ttl < 2*time.Second || o.ttl%time.Second != 0:
		return fmt.Errorf("--ttl %s: use whole seconds, at least 2s (etcd's minimum lease TTL)", o.ttl)
	}
	if o.debugToken != "" && len(o.debugToken) < minTokenLen {
		return fmt.Errorf("--debug-token is too short: use at least %d characters (e.g. openssl rand -hex 16)", minTokenLen)
	}
	if o.debugAddr != "" {
		host, _, err := net.SplitHostPort(o.debugAddr)
		if err != nil {
			return fmt.Errorf("--debug-addr %q: %v (e.g. 127.0.0.1:7070)", o.debugAddr, err)
		}
		if !loopback(host) && o.debugToken == "" {
			return fmt.Errorf("--debug-addr %q is not a loopback address: serving the debug endpoint there needs --debug-token (or $%s, or --debug-token-file); or bind it to 127.0.0.1", o.debugAddr, debugTokenEnv)
		}
	}
	return nil
}

// loopback reports whether host (of host:port) is a loopback address. An
// empty host means every interface.
func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// newLogger is the binary's logger: --log-level, and --log-format or the
// format that suits stderr.
func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lvl, TimeFormat: textTime, ReplaceAttr: replaceAttr})), nil
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: replaceAttr})), nil
}

// run is the binary: a subcommand named by the first argument, or else a
// node; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "guard":
			return guard.Main(args[1:])
		case "tree":
			return runTree(args[1:], stdout, stderr)
		case "step-down":
			return runStepDown(args[1:], stdout, stderr)
		case "status":
			return runStatus(args[1:], stdout, stderr)
		case "runs":
			return runRuns(args[1:], stdout, stderr)
		}
	}
	return runNode(args, stderr)
}

// runNode is a scheduler node: it reads every flag and file before anything
// starts, then joins or starts etcd and runs the tree until a signal.
func runNode(args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	log, err := newLogger(o.logFormat, o.logLevel, stderr)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	for _, name := range o.unknownEnv {
		log.Warn("environment variable "+name+" sets no flag and is ignored: misspelt? (see -h)", "var", name)
	}
	taskList, err := loadTasks(o.tasksFile, log)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	// Every file is read before anything starts.
	debugTLS, err := loadDebugTLS(o)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}

	sigs := watchSignals(log)
	defer sigs.release()
	return runOnEtcd(sigs, &nodeConfig{o: o, log: log, tasks: taskList, debugTLS: debugTLS}, stderr)
}

// nodeConfig is what a node has read before anything starts.
type nodeConfig struct {
	o        *options
	log      *slog.Logger
	tasks    []*tasks.Task
	debugTLS *tls.Config // nil: the debug endpoint serves plain HTTP
}

// fail reports err as the one line a failed start-up prints, and returns
// the exit status code.
func fail(stderr io.Writer, code int, err error) int {
	fmt.Fprintln(stderr, "scheduler:", err)
	return code
}

// loadTasks reads --tasks, logging each rejected task; without the flag,
// the built-in examples run.
func loadTasks(file string, log *slog.Logger) ([]*tasks.Task, error) {
	if file == "" {
		return tasks.Examples(), nil
	}
	valid, problems, err := tasks.Load(file)
	if err != nil {
		return nil, fmt.Errorf("--tasks: %w", err)
	}
	for _, p := range problems {
		log.Error("task rejected; the valid tasks still run", "err", p)
	}
	if len(valid) == 0 {
		return nil, fmt.Errorf("--tasks %s: no valid task", file)
	}
	return valid, nil
}

// loadDebugTLS reads --debug-cert and --debug-key; nil without them.
func loadDebugTLS(o *options) (*tls.Config, error) {
	if o.debugCert == "" {
		return nil, nil
	}
	pair, err := loadPair(o.debugCert, o.debugKey, "--debug-cert/--debug-key")
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}

// runOnEtcd starts the embedded etcd when no --endpoints are given,
// connects to etcd and runs the node on it; the embedded etcd closes last.
func runOnEtcd(sigs *signals, n *nodeConfig, stderr io.Writer) int {
	endpoints := strings.Split(n.o.endpoints, ",")
	embedded := n.o.endpoints == ""
	if embedded {
		srv, err := startEmbedded(n.o.dataDir, n.log)
		if err != nil {
			return fail(stderr, exitFailure, err)
		}
		defer srv.Close()
		endpoints = []string{srv.ClientURL}
	}
	cfg, err := clientConfig(n.o, endpoints)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	client, err := connect(sigs.ctx, cfg)
	if err != nil {
		return fail(stderr, exitFailure, err)
	}
	defer client.Close()
	return serveNode(sigs, n, client, embedded, stderr)
}

// connect dials etcd and checks that it answers, so that a wrong
// certificate, wrong credentials or an unreachable etcd stop the start-up
// with one line.
func connect(ctx context.Context, cfg clientv3.Config) (*clientv3.Client, error) {
	if err := tlsCheck(ctx, cfg.TLS, cfg.Endpoints); err != nil {
		return nil, fmt.Errorf("etcd at %s: TLS: %v", cfg.Endpoints[0], err)
	}
	// With credentials the client authenticates as it dials.
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot reach etcd at %s: %v", strings.Join(cfg.Endpoints, ","), err)
	}
	if err := ping(ctx, client); err != nil {
		client.Close()
		return nil, fmt.Errorf("cannot reach etcd at %s: %v", strings.Join(cfg.Endpoints, ","), err)
	}
	return client, nil
}

// serveNode builds the node's tree, runtime and debug endpoint on client
// and runs them until the first signal; with an embedded etcd it then keeps
// serving the other nodes, the debug endpoint still up, until the second.
func serveNode(sigs *signals, n *nodeConfig, client *clientv3.Client, embedded bool, stderr io.Writer) int {
	o, log := n.o, n.log
	layout := scheduler.NewLayout(o.prefix)
	// The debug endpoint listens first: its address goes into the
	// registry key, which other nodes read to show this one.
	dbg, err := listenDebug(o)
	if err != nil {
		return fail(stderr, exitFailure, err)
	}
	defer dbg.closeListener()
	info, err := nodeInfo(o, dbg.ln)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	idWatch := &scheduler.IDWatch{Client: client, Layout: layout, Info: info, TTL: o.ttl, Log: log}
	tree := newTree(n, client, layout, info, dbg.schedMetrics)
	rtOpts := leasehold.Options{NodeID: o.nodeID, Logger: runtimeLog(log, o.nodeID)}
	if dbg.on() {
		rtOpts.OnEvent = dbg.observe
	}
	rt, err := leasehold.New(client, tree, rtOpts)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	if dbg.on() {
		stop, err := dbg.serve(n, client, layout, rt, idWatch.Err)
		if err != nil {
			return fail(stderr, exitFailure, err)
		}
		defer stop()
	}
	logStarting(o, layout, n.tasks, log)
	err = runWithIDWatch(sigs.ctx, rt, idWatch)
	close(sigs.stopped)
	if err != nil {
		log.Error("stopped", "err", err)
		return exitFailure
	}
	log.Info("stopped")
	if embedded {
		keepServing(sigs, client, layout, log)
	}
	return exitOK
}

// nodeInfo is what the node publishes in its registry key.
func nodeInfo(o *options, debugLn net.Listener) (scheduler.NodeInfo, error) {
	info := scheduler.NewNodeInfo(o.nodeID)
	var err error
	if info.DebugURL, err = debugURLOf(o, debugLn); err != nil {
		return info, err
	}
	info.Version = cluster.Version()
	return info, nil
}

// newTree is the scheduler's supervision tree, configured from the flags.
func newTree(n *nodeConfig, client *clientv3.Client, layout scheduler.Layout, info scheduler.NodeInfo, metrics *scheduler.Metrics) *leasehold.Node {
	o := n.o
	return scheduler.Tree(scheduler.Config{
		Info:   info,
		Client: client, Layout: layout, NodeID: o.nodeID, TTL: o.ttl, Tasks: n.tasks, Log: n.log, Grace: o.grace,
		// The guard is this very binary (/proc/self/exe), run as "guard".
		Guard:     guard.Spec{Args: []string{"guard"}},
		Output:    scheduler.LogLines(0),
		Metrics:   metrics,
		Retention: scheduler.Retention{Keep: o.keep, KeepFor: o.keepFor},
	})
}

// logStarting says which node starts, where its keys are and what it runs.
func logStarting(o *options, layout scheduler.Layout, taskList []*tasks.Task, log *slog.Logger) {
	names := make([]string, len(taskList))
	for i, t := range taskList {
		names[i] = t.Name + " (" + t.Schedule + ")"
	}
	log.Info("node starting", "node", o.nodeID, "prefix", layout.Prefix, "ttl", o.ttl, "tasks", names)
}

// runWithIDWatch runs the runtime until ctx ends, with the id watch beside
// it: it says at once when another process holds this node's id.
func runWithIDWatch(ctx context.Context, rt *leasehold.Runtime, idWatch *scheduler.IDWatch) error {
	idCtx, stopID := context.WithCancel(ctx)
	idDone := make(chan struct{})
	go func() { defer close(idDone); idWatch.Run(idCtx) }()
	err := rt.Run(ctx)
	stopID()
	<-idDone
	return err
}

// clientConfig builds the etcd client's configuration from etcdctl's TLS
// and auth flags.
func clientConfig(o *options, endpoints []string) (clientv3.Config, error) {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), DialOptions: reconnectFast()}
	if o.user != "" {
		name, password, found := strings.Cut(o.user, ":")
		if !found {
			password = o.password
		}
		cfg.Username, cfg.Password = name, password
	}
	if o.cacert != "" || o.cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.cacert != "" {
			roots, err := loadCAs(o.cacert)
			if err != nil {
				return cfg, err
			}
			tc.RootCAs = roots
		}
		if o.cert != "" {
			pair, err := loadPair(o.cert, o.key, "--cert/--key")
			if err != nil {
				return cfg, err
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// ping checks that etcd answers (and that the credentials work) before
// anything starts.
func ping(ctx context.Context, c *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.Get(ctx, "leasehold-ping", clientv3.WithCountOnly())
	return err
}
