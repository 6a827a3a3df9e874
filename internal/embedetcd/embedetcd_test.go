package embedetcd

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The embedded etcd compacts old revisions by itself and has a quota: a
// key's old revisions become unreadable once compacted.
func TestBoundedStorage(t *testing.T) {
	srv, err := Start(t.TempDir(), "http://127.0.0.1:0", "http://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if got := srv.etcd.Config().AutoCompactionMode; got != "periodic" {
		t.Errorf("auto-compaction mode %q; want periodic", got)
	}
	if got := srv.etcd.Config().AutoCompactionRetention; got != CompactionRetention {
		t.Errorf("auto-compaction retention %q; want %q", got, CompactionRetention)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Status(ctx, srv.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	if st.DbSizeQuota != QuotaBytes {
		t.Errorf("backend quota %d bytes; want %d", st.DbSizeQuota, QuotaBytes)
	}
}
