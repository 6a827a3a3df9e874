// Command minimal embeds a leasehold tree in a service of its own: one
// election whose leader bumps a counter in etcd through fenced writes, so
// that a deposed leader's write can never land.
//
//	go run .                                   # embedded etcd
//	go run . --endpoints http://127.0.0.1:2379 # a real one
//
// Start it twice against the same etcd and stop the leader with Ctrl-C: the
// other takes over within milliseconds, with a larger fencing token.
//
// It is a module of its own, importing leasehold as any program would, so it
// can be copied out of this repository as it is (drop the replace line of
// its go.mod).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/leases"
)

func main() {
	endpoints := flag.String("endpoints", "", "etcd endpoint; empty starts an embedded etcd in a temporary directory")
	flag.Parse()
	if err := run(*endpoints); err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

func run(endpoint string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if endpoint == "" {
		dir, err := os.MkdirTemp("", "leasehold-minimal")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		e, err := startEtcd(dir)
		if err != nil {
			return err
		}
		defer e.Close()
		endpoint = "http://" + e.Clients[0].Addr().String()
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer client.Close()

	tree := leasehold.Election("leader", "/minimal/leader", leasehold.TTL(5*time.Second),
		leasehold.Func("counter", count))
	slog.Info("campaigning", "etcd", endpoint)
	return leasehold.Run(ctx, client, tree)
}

// count runs only while this process leads: every second it increments a
// counter with a transaction fenced by the leadership term.
func count(ctx context.Context) error {
	term := leasehold.TermOf(ctx)
	slog.Info("leading", "token", term.Token())
	for {
		select {
		case <-ctx.Done():
			slog.Info("no longer leading", "why", context.Cause(ctx))
			return nil
		case <-time.After(time.Second):
		}
		resp, err := term.Txn(ctx).Then(clientv3.OpGet("/minimal/counter")).Commit()
		if err != nil {
			return err
		}
		n := 0
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			n, _ = strconv.Atoi(string(kvs[0].Value))
		}
		_, err = term.Txn(ctx).Then(clientv3.OpPut("/minimal/counter", strconv.Itoa(n+1))).Commit()
		if errors.Is(err, leases.ErrFenced) {
			slog.Warn("fenced: another process leads now")
			return nil
		}
		if err != nil {
			return err
		}
		slog.Info("counted", "value", n+1, "token", term.Token())
	}
}

// startEtcd starts a single-member etcd on loopback ports of the system's
// choosing, with its data in dir.
func startEtcd(dir string) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	loopback := []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = loopback, loopback
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = loopback, loopback
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(time.Minute):
		e.Close()
		return nil, errors.New("embedded etcd not ready after a minute")
	}
}
