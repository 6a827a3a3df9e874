package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/embedetcd"
	"github.com/leasehold/leasehold/services/scheduler"
)

// startEmbedded starts the single-node etcd a node runs without
// --endpoints, on the ports other nodes join it at.
func startEmbedded(dataDir string, log *slog.Logger) (*embedetcd.Server, error) {
	srv, err := embedetcd.Start(dataDir, "http://127.0.0.1:2379", "http://127.0.0.1:2380")
	if err != nil {
		return nil, fmt.Errorf("%w (is another node running? join it with --endpoints http://127.0.0.1:2379)", err)
	}
	log.Info("embedded etcd ready: start more nodes with --endpoints "+srv.ClientURL, "data_dir", dataDir)
	return srv, nil
}

// keepServing keeps the embedded etcd up after this node stopped while
// other nodes still use it, so stopping the first node of a demo cluster
// hands over instead of taking the cluster down.
func keepServing(sigs *signals, client *clientv3.Client, layout scheduler.Layout, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, layout.Node(""), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count == 0 {
		return
	}
	log.Info("the embedded etcd keeps serving the other nodes; signal again to stop it", "nodes", resp.Count)
	<-sigs.again
}
