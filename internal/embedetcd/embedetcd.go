// Package embedetcd starts embedded etcd servers: the single-member etcd
// that the scheduler binary runs when no --endpoints are given (Start, with
// etcd's production settings: fsync on, default election timing, since its
// data is meant to last), and, through NewConfig and Run, the test servers
// of internal/etcdtest and the split-brain campaign's members, which tune
// the same configuration for speed.
package embedetcd

import (
	"context"
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

// Start starts the binary's etcd with its data in dir, serving clients on
// clientURL and peers on peerURL (both should be loopback unless the
// operator means otherwise), with production settings and the storage
// bounds (see Bound). It waits until the server is ready.
//
// tweaks, if any, adjust the configuration last (a benchmark that must see
// compaction within minutes shortens its retention).
func Start(dir, clientURL, peerURL string, tweaks ...func(*embed.Config)) (*Server, error) {
	cfg, err := NewConfig("leasehold", dir, clientURL, peerURL)
	if err != nil {
		return nil, err
	}
	Bound(cfg)
	for _, tweak := range tweaks {
		tweak(cfg)
	}
	e, err := Run(context.Background(), cfg, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd (data in %s, clients on %s): %w", dir, clientURL, err)
	}
	return &Server{etcd: e, ClientURL: "http://" + e.Clients[0].Addr().String()}, nil
}

// NewConfig is the one place an embedded etcd's configuration starts, for the
// binary, the tests (internal/etcdtest) and the split-brain campaign's
// members alike: member name, data directory, client and peer URLs
// ("http://127.0.0.1:0" lets the system pick a port), a cluster of this
// member alone (set InitialCluster for more), and etcd's own logs discarded.
func NewConfig(name, dir, clientURL, peerURL string) (*embed.Config, error) {
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("client URL %q: %w", clientURL, err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("peer URL %q: %w", peerURL, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	return cfg, nil
}

// Run starts etcd with cfg and waits until it serves (for a cluster: until
// it has a leader), until ctx ends, or for at most wait. On any error the
// server is closed.
func Run(ctx context.Context, cfg *embed.Config, wait time.Duration) (*embed.Etcd, error) {
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err = <-e.Err():
	case <-e.Server.StopNotify():
		err = errors.New("the server stopped before becoming ready")
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-timer.C:
		err = fmt.Errorf("not ready after %s", wait)
	}
	e.Close()
	return nil, err
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
