package leasehold_test

import (
	"context"
	"errors"
	"log"
	"os/signal"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/leases"
)

// The README's quick start, kept compiling: TestReadmeQuickStartIsTheExample
// checks that the README shows exactly this file (as package main, with
// Example named main).
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	tree := leasehold.Lease("registry", leasehold.TTL(10*time.Second),
		leasehold.Election("election", "/myapp/leader",
			leasehold.Func("planner", plan)), // runs only while this process leads
		leasehold.Lease("runner",
			leasehold.Func("worker", work)), // runs while this process holds its lease
	)
	// Run returns only after every service it started has returned.
	if err := leasehold.Run(ctx, client, tree); err != nil {
		log.Fatal(err)
	}
}

// plan writes through fenced transactions: they commit only while this
// term's leadership lasts, whatever pauses or partitions the process meets.
func plan(ctx context.Context) error {
	term := leasehold.TermOf(ctx)
	for {
		_, err := term.Txn(ctx).Then(clientv3.OpPut("/myapp/plan", "made in this term")).Commit()
		switch {
		case errors.Is(err, leases.ErrFenced):
			return nil // leadership moved on; the tree is stopping this service
		case err != nil && ctx.Err() == nil:
			return err // restarted, with backoff
		}
		select {
		case <-ctx.Done():
			return nil // stopped: the lease or the leadership ended, or Run did
		case <-time.After(time.Second):
		}
	}
}

// work returns as soon as its context ends; the tree stops it, at the latest,
// before leasehold.LeaseOf(ctx).HeldUntil().
func work(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
