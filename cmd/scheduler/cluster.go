package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/debug/cluster"
	"github.com/leasehold/leasehold/services/scheduler"
	"github.com/leasehold/leasehold/services/tasks"
)

// debugURLOf is the URL other nodes reach this node's debug endpoint at,
// published in its registry key: --debug-url, or the listener's address
// (with the host's name when it listens on all interfaces); "" when the
// endpoint is off.
func debugURLOf(o *options, ln net.Listener) (string, error) {
	switch {
	case ln == nil:
		return "", nil
	case o.debugURL != "":
		u, err := cluster.CheckURL(o.debugURL)
		if err != nil {
			return "", fmt.Errorf("--debug-url: %w", err)
		}
		return u, nil
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if host, _ = os.Hostname(); host == "" {
			return "", errors.New("--debug-addr listens on all interfaces and the host has no name: pass --debug-url")
		}
	}
	scheme := "http://"
	if o.debugCert != "" {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port), nil
}

// newCluster builds the cluster view the debug endpoint serves.
func newCluster(o *options, client *clientv3.Client, layout scheduler.Layout, list []*tasks.Task, rt *leasehold.Runtime, log *slog.Logger) (*cluster.Cluster, error) {
	return cluster.New(cluster.Options{
		Client: client, Members: layout.Node(""), Elections: []string{layout.Leader()},
		Self: o.nodeID, Local: rt.Snapshot, Token: o.debugToken, Logger: log,
		Tasks: func(ctx context.Context) ([]cluster.Task, error) {
			st, err := scheduler.TaskHistories(ctx, client, layout, list)
			out := make([]cluster.Task, 0, len(st))
			for _, s := range st {
				t := cluster.Task{Name: s.Task.Name, Schedule: s.Task.Schedule, LastSlot: s.LastSlot, NextSlot: s.NextSlot}
				if s.LastRun != nil {
					r := clusterRun(*s.LastRun)
					t.LastRun = &r
				}
				for _, f := range s.Failures {
					t.Failures = append(t.Failures, clusterRun(f))
				}
				out = append(out, t)
			}
			return out, err
		},
	})
}

func clusterRun(r scheduler.Run) cluster.Run {
	return cluster.Run{Slot: r.Slot, State: string(r.State), Attempt: r.Attempt, Runner: r.Runner, FinishedAt: r.FinishedAt, ExitCode: r.ExitCode, Reason: r.Reason}
}

// runStepDown is "scheduler step-down": it asks the current leader, through
// etcd and with the operator's etcd credentials, to hand leadership over.
func runStepDown(args []string, stdout, stderr io.Writer) int {
	o := &options{}
	fs := flag.NewFlagSet("scheduler step-down", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.endpoints, "endpoints", "http://127.0.0.1:2379", "etcd endpoints, comma separated")
	fs.StringVar(&o.prefix, "prefix", "/leasehold", "etcd key prefix of the scheduler's keys")
	fs.StringVar(&o.cacert, "cacert", "", "verify etcd's certificate with this CA bundle (etcdctl's flag)")
	fs.StringVar(&o.cert, "cert", "", "client certificate for etcd TLS (etcdctl's flag)")
	fs.StringVar(&o.key, "key", "", "client key for etcd TLS (etcdctl's flag)")
	fs.StringVar(&o.user, "user", "", "etcd user, as name or name:password (etcdctl's flag)")
	fs.StringVar(&o.password, "password", "", "etcd password, when --user has none (etcdctl's flag)")
	to := fs.String("to", "", "node id of the preferred successor (must be campaigning); default: the next in line")
	stayOut := fs.Duration("stay-out", 0, "how long the old leader stays out of the race at most; it rejoins once another node leads (default 10s)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up waiting for the new leader after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: scheduler step-down [--to NODE] [flags]: ask the current leader to hand leadership over")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "scheduler step-down: %v (see scheduler step-down -h)\n", err)
		return exitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "scheduler step-down: unexpected argument %q: flags only (see scheduler step-down -h)\n", fs.Arg(0))
		return exitUsage
	case *stayOut < 0:
		fmt.Fprintf(stderr, "scheduler step-down: --stay-out %s: use a positive duration, or leave it out for 10s\n", *stayOut)
		return exitUsage
	case *timeout <= 0:
		fmt.Fprintf(stderr, "scheduler step-down: --timeout %s: use a positive duration such as 30s\n", *timeout)
		return exitUsage
	case (o.cert == "") != (o.key == ""):
		fmt.Fprintln(stderr, "scheduler step-down: --cert and --key go together: give both or neither")
		return exitUsage
	}
	endpoints := strings.Split(o.endpoints, ",")
	cfg, err := clientConfig(o, endpoints)
	if err != nil {
		fmt.Fprintln(stderr, "scheduler step-down:", err)
		return exitUsage
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "scheduler step-down: cannot reach etcd at %s: %v\n", o.endpoints, err)
		return exitFailure
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := scheduler.RequestStepDown(ctx, client, scheduler.NewLayout(o.prefix), *to, *stayOut)
	if err != nil {
		fmt.Fprintln(stderr, "scheduler step-down:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "leadership moved from %s (token %d) to %s (token %d) in %s\n", res.From, res.FromToken, res.To, res.ToToken, res.Took.Round(time.Millisecond))
	if *to != "" && res.To != *to {
		fmt.Fprintf(stderr, "scheduler step-down: %s leads, not %s as asked\n", res.To, *to)
		return exitFailure
	}
	return exitOK
}
