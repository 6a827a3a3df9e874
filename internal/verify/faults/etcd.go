package faults

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/embedetcd"
)

// EtcdSettings are the timing settings of a campaign's etcd members.
type EtcdSettings struct {
	TickMs, ElectionMs uint
	// NoFsync skips fsync. Safe for process kills (the page cache
	// survives them); only a power loss would lose data.
	NoFsync bool
}

func (s EtcdSettings) String() string {
	fsync := "fsync on"
	if s.NoFsync {
		fsync = "fsync off"
	}
	return fmt.Sprintf("heartbeat %d ms, election timeout %d ms, %s", s.TickMs, s.ElectionMs, fsync)
}

// Member is one etcd member of a campaign's cluster, run as a separate
// process (RunMember) so that it can be killed, stopped and restarted.
type Member struct {
	Name      string
	Dir       string
	ClientURL string // http://127.0.0.1:port
	PeerURL   string
	Cluster   string // the initial cluster, name=peerURL,...
	Settings  EtcdSettings
}

// Args are the command-line arguments of the member's process after its
// role; ParseMember reads them back.
func (m Member) Args() []string {
	return []string{m.Name, m.Dir, m.ClientURL, m.PeerURL, m.Cluster,
		fmt.Sprint(m.Settings.TickMs), fmt.Sprint(m.Settings.ElectionMs), fmt.Sprint(m.Settings.NoFsync)}
}

// ParseMember parses Member.Args.
func ParseMember(args []string) (Member, error) {
	if len(args) != 8 {
		return Member{}, fmt.Errorf("faults: etcd member wants 8 arguments, got %d", len(args))
	}
	var m Member
	m.Name, m.Dir, m.ClientURL, m.PeerURL, m.Cluster = args[0], args[1], args[2], args[3], args[4]
	if _, err := fmt.Sscan(args[5], &m.Settings.TickMs); err != nil {
		return m, err
	}
	if _, err := fmt.Sscan(args[6], &m.Settings.ElectionMs); err != nil {
		return m, err
	}
	m.Settings.NoFsync = args[7] == "true"
	return m, nil
}

// RunMember runs the member in this process: it starts etcd (recovering its
// data directory if it has one), prints "READY <client URL>" on stdout once
// the member serves, and runs until SIGTERM or SIGINT, or until its parent
// goes away.
func RunMember(m Member) error {
	ExitWithParent()
	cfg, err := embedetcd.NewConfig(m.Name, m.Dir, m.ClientURL, m.PeerURL)
	if err != nil {
		return err
	}
	cfg.InitialCluster = m.Cluster
	cfg.InitialClusterToken = "splitbrain"
	cfg.TickMs = m.Settings.TickMs
	cfg.ElectionMs = m.Settings.ElectionMs
	cfg.UnsafeNoFsync = m.Settings.NoFsync
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	e, err := embedetcd.Run(ctx, cfg, time.Hour) // the campaign bounds its own wait
	if ctx.Err() != nil {
		return nil // stopped before it served
	}
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	defer e.Close()
	fmt.Println("READY", m.ClientURL)
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	case <-e.Server.StopNotify():
		return errors.New("etcd member stopped")
	case <-ctx.Done():
		return nil
	}
}

// NewCluster describes n members with data under dir, on free loopback
// ports.
func NewCluster(dir string, n int, s EtcdSettings) ([]Member, error) {
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	ms := make([]Member, n)
	var cluster []string
	for i := range ms {
		ms[i] = Member{
			Name:      fmt.Sprintf("m%d", i),
			Dir:       fmt.Sprintf("%s/m%d.etcd", dir, i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Settings:  s,
		}
		cluster = append(cluster, ms[i].Name+"="+ms[i].PeerURL)
	}
	for i := range ms {
		ms[i].Cluster = strings.Join(cluster, ",")
	}
	return ms, nil
}

// RaftLeader returns the index of the member (among endpoints) that is the
// raft leader, asking each member in turn; -1 if none answers as leader.
func RaftLeader(ctx context.Context, c *clientv3.Client, endpoints []string) int {
	for i, ep := range endpoints {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := c.Status(sctx, ep)
		cancel()
		if err == nil && resp.Leader != 0 && resp.Leader == resp.Header.MemberId {
			return i
		}
	}
	return -1
}
