package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/verify/checker"
	"github.com/leasehold/leasehold/internal/verify/faults"
	"github.com/leasehold/leasehold/internal/verify/history"
)

const (
	// restartDelay is how long a node that exited stays down.
	restartDelay = 500 * time.Millisecond
	// actingWindow: a node whose last act is this recent is acting.
	actingWindow = 200 * time.Millisecond
	// memberReady bounds how long an etcd member may take to serve.
	memberReady = 60 * time.Second
	// stopGrace is how long a process has to exit after SIGTERM.
	stopGrace = 10 * time.Second
)

// campaignConfig configures one campaign: one mode against one etcd cluster.
type campaignConfig struct {
	Mode     string
	Nodes    int
	Members  int
	Faults   int           // faults to inject; 0: until Duration
	Duration time.Duration // used when Faults is 0
	Seed     uint64
	Kinds    []string
	TTL      time.Duration
	Etcd     faults.EtcdSettings
	Self     string // executable run in the node and etcd roles
	Marker   string // carried by every child process (faults.MarkerEnv)
	Work     string // scratch directory (etcd data, sockets, logs)
	HistDir  string // where the histories go
	Log      io.Writer
}

// result is what a campaign did and what the checker found.
type result struct {
	Mode       string
	Report     *checker.Report
	Torn       []string
	Injected   int
	NoRecovery int // faults after which no leader acted within the bound
	Wall       time.Duration
	Err        error // the campaign could not run or finish as planned
}

type campaign struct {
	cfg      campaignConfig
	group    *faults.Group
	driver   *history.Writer
	members  []faults.Member
	etcd     []*faults.Proc // guarded by mu
	mu       sync.Mutex
	observer *clientv3.Client
	slots    []*slot
	stopping atomic.Bool
	wg       sync.WaitGroup // slot supervisors
	injected int
	noRecov  int
}

// slot is one node: a process restarted whenever it exits, and its proxies.
type slot struct {
	id      string
	proxies []*faults.Proxy

	mu   sync.Mutex
	inc  int
	proc *faults.Proc
	path string

	lastAct atomic.Int64 // clock.Time of the latest act seen in its history
}

func (s *slot) current() (*faults.Proc, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil, s.id
	}
	return s.proc, fmt.Sprintf("%s.%d", s.id, s.inc)
}

func (s *slot) signal(sig syscall.Signal) string {
	p, name := s.current()
	if p != nil {
		_ = p.Signal(sig)
	}
	return name
}

func (c *campaign) logf(format string, args ...any) {
	if c.cfg.Log != nil {
		fmt.Fprintf(c.cfg.Log, "[%s] %s\n", c.cfg.Mode, fmt.Sprintf(format, args...))
	}
}

// runCampaign runs one campaign: it never returns before every process it
// started has exited.
func runCampaign(ctx context.Context, cfg campaignConfig) (res result) {
	start := time.Now()
	res.Mode = cfg.Mode
	c := &campaign{cfg: cfg, group: faults.NewGroup(cfg.Marker)}
	registerGroup(c.group)
	defer c.group.Close()
	err := c.setup()
	if err == nil {
		err = c.nemesis(ctx)
	}
	if terr := c.teardown(); err == nil {
		err = terr
	}
	res.Err, res.Injected, res.NoRecovery = err, c.injected, c.noRecov
	events, torn, rerr := history.ReadDir(cfg.HistDir)
	if rerr != nil && res.Err == nil {
		res.Err = rerr
	}
	res.Report, res.Torn = checker.Check(events), torn
	res.Wall = time.Since(start)
	return res
}

func (c *campaign) setup() error {
	for _, d := range []string{c.cfg.HistDir, filepath.Join(c.cfg.Work, "logs"), filepath.Join(c.cfg.Work, "s")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var err error
	c.driver, err = history.Create(filepath.Join(c.cfg.HistDir, "driver.jsonl"), history.Event{Node: "driver", PID: os.Getpid(), Mode: c.cfg.Mode})
	if err != nil {
		return err
	}
	c.members, err = faults.NewCluster(c.cfg.Work, c.cfg.Members, c.cfg.Etcd)
	if err != nil {
		return err
	}
	c.etcd = make([]*faults.Proc, len(c.members))
	if err := c.startMembers(allIndexes(len(c.members))); err != nil {
		return err
	}
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.ClientURL)
	}
	c.observer, err = clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	for i := range c.cfg.Nodes {
		s := &slot{id: fmt.Sprintf("n%d", i+1)}
		for j, m := range c.members {
			p, err := faults.NewProxy(filepath.Join(c.cfg.Work, "s", fmt.Sprintf("%s-m%d.sock", s.id, j)), m.ClientURL)
			if err != nil {
				return err
			}
			s.proxies = append(s.proxies, p)
		}
		c.slots = append(c.slots, s)
	}
	_ = c.driver.Append(history.Event{Kind: history.Campaign, Detail: fmt.Sprintf("mode %s, seed %d, %d nodes, TTL %s, %d etcd members (%s), kinds %s",
		c.cfg.Mode, c.cfg.Seed, c.cfg.Nodes, c.cfg.TTL, c.cfg.Members, c.cfg.Etcd, strings.Join(c.cfg.Kinds, ","))})
	for _, s := range c.slots {
		c.wg.Add(1)
		safeGo(func() { defer c.wg.Done(); c.supervise(s) })
	}
	return nil
}

func allIndexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func (c *campaign) logFile(name string) *os.File {
	f, err := os.OpenFile(filepath.Join(c.cfg.Work, "logs", name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil
	}
	return f
}

// startMembers starts the given etcd members and waits until all serve.
func (c *campaign) startMembers(idx []int) error {
	procs := map[int]*faults.Proc{}
	for _, i := range idx {
		m := c.members[i]
		log := c.logFile(m.Name)
		p, err := c.group.Start(m.Name, c.cfg.Self, m.Args(), []string{roleEnv + "=etcd"}, log)
		if log != nil {
			log.Close()
		}
		if err != nil {
			return err
		}
		procs[i] = p
		c.mu.Lock()
		c.etcd[i] = p
		c.mu.Unlock()
	}
	deadline := time.After(memberReady)
	for i, p := range procs {
		select {
		case <-p.Ready:
		case <-p.Done():
			code, sig := p.Exit()
			return fmt.Errorf("etcd member %s exited (%d %s) before serving; see its log in %s", c.members[i].Name, code, sig, filepath.Join(c.cfg.Work, "logs"))
		case <-deadline:
			return fmt.Errorf("etcd member %s not serving after %s", c.members[i].Name, memberReady)
		}
	}
	return nil
}

func (c *campaign) member(i int) *faults.Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.etcd[i]
}

// supervise runs a slot's node, restarting it whenever it exits, until the
// campaign stops.
func (c *campaign) supervise(s *slot) {
	var eps []string
	for _, p := range s.proxies {
		eps = append(eps, p.Endpoint())
	}
	for !c.stopping.Load() {
		s.mu.Lock()
		s.inc++
		nc := nodeConfig{
			ID: s.id, Inc: s.inc, Mode: c.cfg.Mode, Endpoints: eps,
			History: filepath.Join(c.cfg.HistDir, fmt.Sprintf("%s.%d.jsonl", s.id, s.inc)),
			TTL:     c.cfg.TTL, ActEvery: 10 * time.Millisecond, WriteEvery: 50 * time.Millisecond,
			StubbornFor: c.cfg.TTL + time.Second,
		}
		log := c.logFile(s.id)
		p, err := c.group.Start(fmt.Sprintf("%s.%d", s.id, s.inc), c.cfg.Self, nc.args(), []string{roleEnv + "=node"}, log)
		if log != nil {
			log.Close()
		}
		if err != nil {
			s.mu.Unlock()
			if errors.Is(err, faults.ErrClosed) {
				return
			}
			c.logf("cannot start %s: %v", s.id, err)
			time.Sleep(time.Second)
			continue
		}
		s.proc, s.path = p, nc.History
		inc := s.inc
		s.mu.Unlock()
		<-p.Done()
		code, sig := p.Exit()
		_ = c.driver.Append(history.Event{Kind: history.Exit, Target: fmt.Sprintf("%s.%d", s.id, inc), Code: code, Signal: sig})
		if !c.stopping.Load() {
			time.Sleep(restartDelay)
		}
	}
}

// monitor follows the nodes' histories and keeps each slot's latest act,
// until ctx ends.
func (c *campaign) monitor(ctx context.Context) {
	type tail struct {
		path    string
		off     int64
		partial []byte
	}
	tails := make([]tail, len(c.slots))
	buf := make([]byte, 1<<16)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, s := range c.slots {
			s.mu.Lock()
			path := s.path
			s.mu.Unlock()
			tl := &tails[i]
			if path != tl.path {
				*tl = tail{path: path}
			}
			if path == "" {
				continue
			}
			f, err := os.Open(path)
			if err != nil {
				continue
			}
			for {
				n, err := f.ReadAt(buf, tl.off)
				if n > 0 {
					tl.off += int64(n)
					data := append(tl.partial, buf[:n]...)
					last := bytes.LastIndexByte(data, '\n')
					if last < 0 {
						tl.partial = data
					} else {
						c.sawLines(s, data[:last])
						tl.partial = append([]byte(nil), data[last+1:]...)
					}
				}
				if err != nil || n < len(buf) {
					break
				}
			}
			f.Close()
		}
	}
}

func (c *campaign) sawLines(s *slot, data []byte) {
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if !bytes.Contains(line, []byte(`"kind":"act"`)) {
			continue
		}
		var e struct {
			At int64 `json:"at"`
		}
		if json.Unmarshal(line, &e) == nil && e.At > s.lastAct.Load() {
			s.lastAct.Store(e.At)
		}
	}
}

// leader returns the slot that acted most recently, if that was within
// actingWindow.
func (c *campaign) leader() *slot {
	now := int64(clock.Boot.Now())
	var best *slot
	for _, s := range c.slots {
		if at := s.lastAct.Load(); now-at <= int64(actingWindow) && (best == nil || at > best.lastAct.Load()) {
			best = s
		}
	}
	return best
}

// awaitLeader waits until some node acts after since, up to bound.
func (c *campaign) awaitLeader(ctx context.Context, since clock.Time, bound time.Duration) *slot {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if l := c.leader(); l != nil && l.lastAct.Load() > int64(since) {
			return l
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return nil
}

// nemesis injects the planned faults one after another.
func (c *campaign) nemesis(ctx context.Context) error {
	mctx, stop := context.WithCancel(context.Background())
	defer stop()
	var mon sync.WaitGroup
	mon.Go(func() { c.monitor(mctx) })
	defer mon.Wait()
	defer stop()

	recoverBound := 4*c.cfg.TTL + 5*time.Second
	if c.awaitLeader(ctx, 0, 60*time.Second) == nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped before the first leader acted: %w", context.Cause(ctx))
		}
		return errors.New("no node acted as leader within 60s of the start")
	}
	c.logf("a leader acts; injecting faults")
	plan := newPlanner(c.cfg.Seed, c.cfg.Kinds, c.cfg.TTL)
	start := time.Now()
	for {
		if c.cfg.Faults > 0 && c.injected >= c.cfg.Faults {
			return nil
		}
		if c.cfg.Faults == 0 && time.Since(start) >= c.cfg.Duration {
			return nil
		}
		f := plan.next()
		sleepCtx(ctx, f.Gap)
		if ctx.Err() != nil {
			return fmt.Errorf("stopped after %d faults: %w", c.injected, context.Cause(ctx))
		}
		if err := c.inject(ctx, f); err != nil {
			return fmt.Errorf("fault %s: %w", f, err)
		}
		c.injected++
		if c.awaitLeader(ctx, clock.Boot.Now(), recoverBound) == nil && ctx.Err() == nil {
			c.noRecov++
			c.logf("no leader acted within %s after fault %s", recoverBound, f)
		}
	}
}

// target picks the node a fault aims at: the leader, or a follower.
func (c *campaign) target(ctx context.Context, f fault) (*slot, string) {
	leader := c.leader()
	if leader == nil {
		leader = c.awaitLeader(ctx, 0, 2*time.Second)
	}
	if f.Leader && leader != nil {
		return leader, "leader"
	}
	var others []*slot
	for _, s := range c.slots {
		if s != leader {
			others = append(others, s)
		}
	}
	s := others[f.Pick%len(others)]
	if leader == nil {
		return s, "none acting"
	}
	return s, "follower"
}

func (c *campaign) record(f fault, phase, target, role string) {
	detail := ""
	if phase == "start" {
		detail = f.String()
	}
	_ = c.driver.Append(history.Event{Kind: history.Fault, Fault: f.Kind, Phase: phase, Target: target, Role: role, Detail: detail})
}

// hold keeps a fault in place for d, or until the campaign is stopped; the
// fault's own code heals it either way.
func hold(ctx context.Context, d time.Duration) { sleepCtx(ctx, d) }

func (c *campaign) inject(ctx context.Context, f fault) error {
	switch f.Kind {
	case faultKill, faultPause, faultPartition, faultLatency, faultStubborn:
		s, role := c.target(ctx, f)
		name := s.signalName()
		c.logf("%s -> %s (%s)", f, name, role)
		c.record(f, "start", name, role)
		defer func() { c.record(f, "end", name, role) }()
		switch f.Kind {
		case faultKill:
			s.signal(syscall.SIGKILL)
		case faultPause:
			s.signal(syscall.SIGSTOP)
			hold(ctx, f.Hold)
			s.signal(syscall.SIGCONT)
		case faultPartition:
			for _, p := range s.proxies {
				p.Partition()
			}
			hold(ctx, f.Hold)
			for _, p := range s.proxies {
				p.Heal()
			}
		case faultLatency:
			for _, p := range s.proxies {
				p.Delay(f.Latency)
			}
			hold(ctx, f.Hold)
			for _, p := range s.proxies {
				p.Delay(0)
			}
		case faultStubborn:
			proc, _ := s.current()
			if proc != nil {
				_ = proc.Signal(syscall.SIGUSR1)
			}
			for _, p := range s.proxies {
				p.Partition()
			}
			hold(ctx, f.Hold)
			for _, p := range s.proxies {
				p.Heal()
			}
			if proc != nil {
				_ = proc.Signal(syscall.SIGUSR2)
			}
		}
		return nil
	case faultEtcdRestart:
		c.logf("%s", f)
		c.record(f, "start", "all members", "cluster")
		defer func() { c.record(f, "end", "all members", "cluster") }()
		idx := allIndexes(len(c.members))
		c.stopMembers(idx, f.Kill)
		hold(ctx, f.Hold)
		return c.startMembers(idx)
	case faultEtcdLeader:
		eps := make([]string, len(c.members))
		for i, m := range c.members {
			eps[i] = m.ClientURL
		}
		i, role := faults.RaftLeader(ctx, c.observer, eps), "etcd leader"
		if i < 0 {
			i, role = f.Pick%len(c.members), "etcd member (no leader found)"
		}
		name := c.members[i].Name
		c.logf("%s -> %s (%s)", f, name, role)
		c.record(f, "start", name, role)
		defer func() { c.record(f, "end", name, role) }()
		if f.Kill {
			c.stopMembers([]int{i}, true)
			hold(ctx, f.Hold)
			return c.startMembers([]int{i})
		}
		p := c.member(i)
		_ = p.Signal(syscall.SIGSTOP)
		hold(ctx, f.Hold)
		_ = p.Signal(syscall.SIGCONT)
		return nil
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

func (s *slot) signalName() string {
	_, name := s.current()
	return name
}

// stopMembers kills (SIGKILL) or terminates (SIGTERM, then SIGKILL after
// 3 s) the given members and waits until they have exited.
func (c *campaign) stopMembers(idx []int, kill bool) {
	var wg sync.WaitGroup
	for _, i := range idx {
		p := c.member(i)
		wg.Go(func() {
			if kill {
				_ = p.Signal(syscall.SIGCONT)
				p.Kill()
			} else {
				// etcd's graceful stop waits for open streams; past a few
				// seconds it is killed, as a service manager would.
				p.Stop(3 * time.Second)
			}
		})
	}
	wg.Wait()
}

// teardown heals every fault, stops the nodes gracefully, dumps etcd's
// record into the histories, and stops etcd. Every step is bounded.
func (c *campaign) teardown() error {
	c.stopping.Store(true)
	var errs []error
	for _, s := range c.slots {
		for _, p := range s.proxies {
			p.Heal()
			p.Delay(0)
		}
		s.signal(syscall.SIGUSR2)
		s.signal(syscall.SIGCONT)
	}
	var dead []int
	for i := range c.etcd {
		p := c.member(i)
		if p == nil {
			continue
		}
		_ = p.Signal(syscall.SIGCONT)
		if !p.Alive() {
			dead = append(dead, i)
		}
	}
	if len(dead) > 0 {
		if err := c.startMembers(dead); err != nil {
			errs = append(errs, err)
		}
	}
	var wg sync.WaitGroup
	for _, s := range c.slots {
		if p, _ := s.current(); p != nil {
			wg.Go(func() { p.Stop(stopGrace) })
		}
	}
	wg.Wait()
	c.wg.Wait()
	if c.observer != nil {
		if len(errs) == 0 {
			if err := c.dumpRecord(); err != nil {
				errs = append(errs, fmt.Errorf("reading etcd's record: %w", err))
			}
		}
		c.observer.Close()
	}
	for i := range c.etcd {
		if p := c.member(i); p != nil {
			wg.Go(func() { p.Stop(stopGrace) })
		}
	}
	wg.Wait()
	for _, s := range c.slots {
		for _, p := range s.proxies {
			p.Close()
		}
	}
	if c.driver != nil {
		c.driver.Close()
	}
	return errors.Join(errs...)
}

// dumpRecord replays every change under keyRoot from revision 1 (nothing
// is compacted) and writes the election keys' creations and deletions and
// the data writes' commits to etcd.jsonl.
func (c *campaign) dumpRecord() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var end int64
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := c.observer.Put(pctx, endKey, "")
		pcancel()
		if err == nil {
			end = resp.Header.Revision
			break
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	w, err := history.Create(filepath.Join(c.cfg.HistDir, "etcd.jsonl"), history.Event{Node: "etcd"})
	if err != nil {
		return err
	}
	defer w.Close()
	now := int64(clock.Boot.Now())
	for wr := range c.observer.Watch(ctx, keyRoot, clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			k, rev := string(ev.Kv.Key), ev.Kv.ModRevision
			switch {
			case strings.HasPrefix(k, electionKey+"/"):
				e := history.Event{Kind: history.Key, At: now, Key: k, Rev: rev, Op: "put", Token: ev.Kv.CreateRevision}
				if ev.Type == clientv3.EventTypeDelete {
					e.Op, e.Token = "delete", 0
				}
				if err := w.Append(e); err != nil {
					return err
				}
			case (k == fencedKey || k == plainKey) && ev.Type == clientv3.EventTypePut:
				var v writeValue
				if err := json.Unmarshal(ev.Kv.Value, &v); err != nil {
					return fmt.Errorf("value at revision %d: %w", rev, err)
				}
				if err := w.Append(history.Event{Kind: history.Commit, At: now, Node: v.Node, Inc: v.Inc, Lease: v.Lease,
					Token: v.Token, Seq: v.Seq, Fenced: v.Fenced, Rev: rev, Key: k}); err != nil {
					return err
				}
			}
			if rev >= end {
				return nil
			}
		}
	}
	return fmt.Errorf("watch ended before revision %d: %w", end, ctx.Err())
}
