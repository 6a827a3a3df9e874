package main

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// reconnectFast bounds gRPC's wait between reconnection attempts to an
// etcd endpoint at 1s (gRPC's default grows to 120s): after an outage of
// ten seconds the default backoff alone can add several seconds before the
// node can renew or grant a lease again.
func reconnectFast() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 2 * time.Second,
	})}
}
