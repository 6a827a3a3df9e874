// Package embedetcd starts the single-member etcd that the scheduler binary
// runs when no --endpoints are given, so that it works on a fresh machine
// with no flags. Unlike internal/etcdtest it keeps etcd's production
// settings (fsync on, default election timing): its data is meant to last.
package embedetcd

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is a running embedded etcd.
type Server struct {
	etcd *embed.Etcd
	// ClientURL is where clients (and other scheduler nodes) connect.
	ClientURL string
}

// Start starts etcd with its data in dir, serving clients on clientURL and
// peers on peerURL (both should be loopback unless the operator means
// otherwise). It waits until the server is ready.
//
// tweaks, if any, adjust the configuration last (a benchmark that must see
// compaction within minutes shortens its retention).
func Start(dir, clientURL, peerURL string, tweaks ...func(*embed.Config)) (*Server, error) {
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("client URL %q: %w", clientURL, err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("peer URL %q: %w", peerURL, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "leasehold"
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	Bound(cfg)
	for _, tweak := range tweaks {
		tweak(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd (data in %s, clients on %s): %w", dir, clientURL, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("start embedded etcd: not ready after 60s")
	}
	return &Server{etcd: e, ClientURL: "http://" + e.Clients[0].Addr().String()}, nil
}

// Storage bounds of the embedded etcd (see Bound).
const (
	// CompactionRetention: etcd keeps every revision of every key until it
	// is compacted; the scheduler needs only recent ones (a watch resumes
	// from a few seconds back).
	CompactionRetention = "10m"
	// QuotaBytes is the backend size at which etcd refuses writes (NOSPACE)
	// instead of filling the disk. Retained run records use a few MiB.
	QuotaBytes = 1 << 30
)

// Bound sets the storage bounds the scheduler's etcd runs with: periodic
// auto-compaction (CompactionRetention) and a backend quota (QuotaBytes).
// Freed pages are reused, so with bounded keys the database stops growing.
func Bound(cfg *embed.Config) {
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = CompactionRetention
	cfg.QuotaBackendBytes = QuotaBytes
}

// Close stops the server; close its clients first, or it waits for their
// streams for several seconds.
func (s *Server) Close() { s.etcd.Close() }
