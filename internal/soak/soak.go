// Package soak runs the scheduler with many fast tasks for minutes on an
// embedded etcd with the binary's storage bounds, and samples what etcd
// holds: the number of keys and the database size must level off once the
// retention policy and compaction catch up.
package soak

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/embedetcd"
	"github.com/leasehold/leasehold/services/guard"
	"github.com/leasehold/leasehold/services/scheduler"
	"github.com/leasehold/leasehold/services/tasks"
)

// Config sizes a soak run.
type Config struct {
	Duration   time.Duration // how long the nodes run
	Tasks      int           // tasks, each "@every Every" running "true"
	Every      time.Duration
	Nodes      int           // in-process scheduler nodes
	Keep       int           // finished records kept per task
	Compaction string        // etcd's periodic auto-compaction retention
	Sample     time.Duration // time between samples
	Guard      guard.Spec    // how units start their guard (this binary)
	Progress   io.Writer     // each sample as it is taken; nil for none
}

// Sample is what etcd held at one time.
type Sample struct {
	At       time.Duration // since the nodes started
	Keys     int64         // keys under the scheduler's prefix
	Records  int64         // run records
	DBSize   int64         // backend file size, bytes
	DBInUse  int64         // bytes in use in the backend
	Revision int64
}

// Result is a soak run.
type Result struct {
	Config  Config
	Samples []Sample
}

// Run runs the soak.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	dir, err := os.MkdirTemp("", "leasehold-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := embedetcd.Start(dir, "http://127.0.0.1:0", "http://127.0.0.1:0", func(c *embed.Config) {
		c.AutoCompactionRetention = cfg.Compaction
	})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer c.Close()

	var b strings.Builder
	b.WriteString("tasks:\n")
	for i := range cfg.Tasks {
		fmt.Fprintf(&b, "  - name: t%03d\n    schedule: \"@every %s\"\n    command: \"true\"\n", i, cfg.Every)
	}
	ts, problems, err := tasks.Parse([]byte(b.String()))
	if err != nil || len(problems) > 0 {
		return nil, fmt.Errorf("soak tasks: %v %v", err, problems)
	}
	layout := scheduler.NewLayout("/soak")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, cfg.Nodes)
	for i := range cfg.Nodes {
		id := fmt.Sprintf("soak-%d", i)
		tree := scheduler.Tree(scheduler.Config{Client: c, Layout: layout, NodeID: id, TTL: 5 * time.Second, Tasks: ts, Log: quiet,
			Guard: cfg.Guard, Retention: scheduler.Retention{Keep: cfg.Keep}})
		rt, err := leasehold.New(c, tree, leasehold.Options{NodeID: id, Logger: quiet})
		if err != nil {
			return nil, err
		}
		go func() { done <- rt.Run(runCtx) }()
	}
	defer func() {
		stop()
		for range cfg.Nodes {
			<-done
		}
	}()

	res := &Result{Config: cfg}
	start := time.Now()
	tick := time.NewTicker(cfg.Sample)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		s, err := sample(ctx, c, srv.ClientURL, layout)
		if err != nil {
			return res, err
		}
		s.At = time.Since(start).Round(time.Second)
		res.Samples = append(res.Samples, s)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "soak %6s  keys %5d  records %5d  db %s (in use %s)  revision %d\n",
				s.At, s.Keys, s.Records, mib(s.DBSize), mib(s.DBInUse), s.Revision)
		}
		if time.Since(start) >= cfg.Duration {
			return res, nil
		}
	}
}

func sample(ctx context.Context, c *clientv3.Client, endpoint string, l scheduler.Layout) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	keys, err := c.Get(ctx, l.Prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return Sample{}, err
	}
	recs, err := c.Get(ctx, l.Runs(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return Sample{}, err
	}
	st, err := c.Status(ctx, endpoint)
	if err != nil {
		return Sample{}, err
	}
	return Sample{Keys: keys.Count, Records: recs.Count, DBSize: st.DbSize, DBInUse: st.DbSizeInUse, Revision: st.Header.Revision}, nil
}

// Flat reports whether the key count and the in-use database size of the
// last quarter of the run stayed within 10% (and 256 KiB: compaction makes a sawtooth) of the
// third quarter's maximum: the policy and compaction keep up.
func (r *Result) Flat() bool {
	n := len(r.Samples)
	if n < 4 {
		return false
	}
	var keys, inUse int64
	for _, s := range r.Samples[n/2 : 3*n/4] {
		keys, inUse = max(keys, s.Keys), max(inUse, s.DBInUse)
	}
	for _, s := range r.Samples[3*n/4:] {
		if float64(s.Keys) > float64(keys)*1.1 || float64(s.DBInUse) > float64(inUse)*1.1+256<<10 {
			return false
		}
	}
	return true
}

// Markdown writes the samples as a table with the machine and settings.
func (r *Result) Markdown(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "Soak: %d tasks @every %s on %d nodes for %s; keep %d records per task; etcd periodic compaction %s; %s/%s, %d CPUs, %s.\n\n",
		c.Tasks, c.Every, c.Nodes, c.Duration, c.Keep, c.Compaction, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "| time | keys | run records | db size | db in use | revision |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Samples {
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %d |\n", s.At, s.Keys, s.Records, mib(s.DBSize), mib(s.DBInUse), s.Revision)
	}
	fmt.Fprintf(w, "\nFlat over the last quarter (keys and db in use within 10%% of the third quarter): %v\n", r.Flat())
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
