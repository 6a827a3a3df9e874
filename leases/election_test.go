package leases_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/leases"
)

func campaign(t *testing.T, c *clientv3.Client, prefix, id string) (*leases.Election, <-chan *leases.Term, <-chan error) {
	t.Helper()
	l := grant(t, c, fast)
	e := leases.NewElection(c, l, prefix, id)
	terms, errs := make(chan *leases.Term, 1), make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		term, err := e.Campaign(ctx)
		if err != nil {
			errs <- err
			return
		}
		// The term ends with its lease, which the test's cleanup closes.
		terms <- term
	}()
	return e, terms, errs
}

func TestElectionQueuesAndHandsOver(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	e1, terms1, _ := campaign(t, c, "/elect", "one")
	t1 := <-terms1
	if want := fmt.Sprintf("/elect/%x", int64(t1.Lease().ID())); t1.Key() != want || e1.Key() != want {
		t.Errorf("key = %q; want %q, the layout of concurrency.Election", t1.Key(), want)
	}
	// etcd's own Election (what `etcdctl elect --listen` uses) sees us lead.
	s, err := concurrency.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	leader, err := concurrency.NewElection(s, "/elect").Leader(testCtx(t))
	if err != nil || string(leader.Kvs[0].Value) != "one" {
		t.Fatalf("concurrency.Election.Leader = %v, %v; want one", leader, err)
	}

	_, terms2, _ := campaign(t, c, "/elect", "two")
	select {
	case <-terms2:
		t.Fatal("second candidate leads while the first does")
	default:
	}
	if err := t1.Resign(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(context.Cause(t1.Ctx()), leases.ErrResigned) {
		t.Errorf("resigned term's cause = %v", context.Cause(t1.Ctx()))
	}
	t2 := <-terms2
	if t2.Token() <= t1.Token() {
		t.Errorf("tokens %d then %d; want strictly increasing", t1.Token(), t2.Token())
	}
}

func TestDeletedKeyEndsTerm(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	_, terms, _ := campaign(t, c, "/elect", "one")
	term := <-terms
	if _, err := srv.Client(t).Delete(testCtx(t), term.Key()); err != nil {
		t.Fatal(err)
	}
	<-term.Done()
	if !errors.Is(context.Cause(term.Ctx()), leases.ErrKeyLost) {
		t.Errorf("cause = %v; want ErrKeyLost", context.Cause(term.Ctx()))
	}
	if term.Lease().Err() != nil {
		t.Errorf("the lease itself was lost too: %v", term.Lease().Err())
	}
}

func TestCampaignFailsWhenLeaseEndsWhileWaiting(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	_, terms1, _ := campaign(t, c, "/elect", "one")
	<-terms1
	ctx := testCtx(t)
	queued := c.Watch(ctx, "/elect/", clientv3.WithPrefix(), clientv3.WithFilterDelete())
	_, _, errs2 := campaign(t, c, "/elect", "two")
	// The waiting candidate's lease is revoked behind its back: Campaign
	// must not return a term once the predecessor goes.
	wr := <-queued
	if len(wr.Events) != 1 || string(wr.Events[0].Kv.Value) != "two" {
		t.Fatalf("queued = %v; want the second candidate's key", wr.Events)
	}
	if _, err := c.Revoke(ctx, clientv3.LeaseID(wr.Events[0].Kv.Lease)); err != nil {
		t.Fatal(err)
	}
	err := <-errs2
	if !errors.Is(err, leases.ErrNotFound) && !errors.Is(err, leases.ErrKeyLost) {
		t.Errorf("Campaign = %v; want the lease or key loss", err)
	}
}

func TestFencedTxn(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	_, terms, _ := campaign(t, c, "/elect", "one")
	term := <-terms
	ctx := testCtx(t)

	if _, err := term.Txn(ctx).Then(clientv3.OpPut("data", "1")).Commit(); err != nil {
		t.Fatalf("fenced put in term: %v", err)
	}
	// Nested: the caller's own condition keeps its meaning.
	resp, err := term.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("data"), "=", "2")).
		Then(clientv3.OpPut("data", "3")).
		Else(clientv3.OpGet("data")).
		Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("nested txn = %v, %v; want the Else branch", resp, err)
	}
	if got := string(resp.Responses[0].GetResponseRange().Kvs[0].Value); got != "1" {
		t.Errorf("Else read %q; want 1", got)
	}

	if err := term.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = term.Txn(ctx).Then(clientv3.OpPut("data", "stale")).Commit()
	if !errors.Is(err, leases.ErrFenced) {
		t.Fatalf("fenced put after the term = %v; want ErrFenced", err)
	}
	got, err := c.Get(ctx, "data")
	if err != nil || string(got.Kvs[0].Value) != "1" {
		t.Errorf("data = %v, %v; want 1 (the stale write must not land)", got.Kvs, err)
	}
}

func TestHoldWaitsForThePreviousHolder(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx := testCtx(t)
	first := grant(t, c, fast)
	t1, err := leases.Hold(ctx, c, first, "/runners/n1", "n1")
	if err != nil {
		t.Fatal(err)
	}
	second := grant(t, c, fast)
	held := make(chan *leases.Term, 1)
	errs := make(chan error, 1)
	go func() {
		t2, err := leases.Hold(ctx, c, second, "/runners/n1", "n1")
		if err != nil {
			errs <- err
			return
		}
		held <- t2
	}()
	select {
	case <-held:
		t.Fatal("a second lease holds the key while the first does")
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if err := first.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	<-t1.Done()
	var t2 *leases.Term
	select {
	case t2 = <-held:
	case err := <-errs:
		t.Fatal(err)
	}
	if t2.Token() <= t1.Token() {
		t.Errorf("tokens %d then %d; want increasing", t1.Token(), t2.Token())
	}
}
