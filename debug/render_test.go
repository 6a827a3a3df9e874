package debug

import (
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold"

	"github.com/leasehold/leasehold/debug/internal/textfmt"
)

// sample is a scheduler node's tree at one moment.
func sample() leasehold.Snapshot {
	at := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	svc := func(name, state string, age time.Duration, restarts int, lastErr string) leasehold.NodeSnapshot {
		return leasehold.NodeSnapshot{Name: name, Kind: leasehold.KindService, State: state, Since: at.Add(-age), Restarts: restarts, LastError: lastErr}
	}
	runner := leasehold.NodeSnapshot{
		Name: "runner", Kind: leasehold.KindLease, State: leasehold.StateHeld, Since: at.Add(-95 * time.Second),
		LeaseID: "694d8a7e2c1f0a09", TTLMillis: 10000, HeldUntilMs: 6120, Term: 2, Renewals: 28, RenewalFail: 1, Held: true,
		Key: "/leasehold/runners/node-a", Token: 31, LastError: "lease lost: no renewal acknowledged before fence_at",
		Children: []leasehold.NodeSnapshot{
			svc("assignments", leasehold.StateRunning, 95*time.Second, 0, ""),
			svc("unit:report:20260801T120000Z", leasehold.StateRunning, 3*time.Second, 0, ""),
			svc("unit:backup:20260801T115900Z", leasehold.StateBackoff, 800*time.Millisecond, 3, "exit status 3: rsync: connection refused\nsecond line"),
		},
	}
	election := leasehold.NodeSnapshot{
		Name: "election", Kind: leasehold.KindElection, State: leasehold.StateLeading, Since: at.Add(-2 * time.Minute),
		LeaseID: "694d8a7e2c1f0a05", TTLMillis: 10000, HeldUntilMs: 9204, Term: 1, Renewals: 36, Held: true,
		Prefix: "/leasehold/leader", Role: "leader", Token: 15, Leader: "node-a",
		Children: []leasehold.NodeSnapshot{svc("scheduler", leasehold.StateRunning, 2*time.Minute, 0, "")},
	}
	root := leasehold.NodeSnapshot{
		Name: "registry", Kind: leasehold.KindLease, State: leasehold.StateHeld, Since: at.Add(-2*time.Minute - 3*time.Second),
		LeaseID: "694d8a7e2c1f0a01", TTLMillis: 10000, HeldUntilMs: 9412, Term: 1, Renewals: 37, Held: true,
		Key: "/leasehold/nodes/node-a", Token: 12,
		Children: []leasehold.NodeSnapshot{election, runner},
	}
	var paths func(n *leasehold.NodeSnapshot, parent string)
	paths = func(n *leasehold.NodeSnapshot, parent string) {
		n.Path = n.Name
		if parent != "" {
			n.Path = parent + "/" + n.Name
		}
		if n.Children == nil {
			n.Children = []leasehold.NodeSnapshot{}
		}
		for i := range n.Children {
			paths(&n.Children[i], n.Path)
		}
	}
	paths(&root, "")
	return leasehold.Snapshot{Node: "node-a", At: at, Tree: root}
}

const golden = `node node-a  2026-08-01T12:00:00Z
registry                              lease     held         for 2m3s   safe 9.4s/10s  term 1  token 12  lease 694d8a7e2c1f0a01
├── election                          election  leading      for 2m0s   safe 9.2s/10s  term 1  LEADER token 15  lease 694d8a7e2c1f0a05
│   └── scheduler                     service   running      for 2m0s
└── runner                            lease     held         for 1m35s  safe 6.1s/10s  term 2  token 31  lease 694d8a7e2c1f0a09  renewal failures 1  last error: lease lost: no renewal acknowledged before fence_at
    ├── assignments                   service   running      for 1m35s
    ├── unit:report:20260801T120000Z  service   running      for 3s
    └── unit:backup:20260801T115900Z  service   backoff      for 800ms  restarts 3  last error: exit status 3: rsync: connection refused
`

func TestRenderGolden(t *testing.T) {
	var b strings.Builder
	if err := Render(&b, sample(), false); err != nil {
		t.Fatal(err)
	}
	if b.String() != golden {
		t.Errorf("Render:\n%s\nwant:\n%s", b.String(), golden)
	}
}

// With colour, states are painted and the columns still line up: the
// escapes wrap the padded state.
func TestRenderColor(t *testing.T) {
	var b strings.Builder
	if err := Render(&b, sample(), true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		textfmt.Green + "held       " + textfmt.Reset,
		textfmt.Green + "leading    " + textfmt.Reset,
		textfmt.Yellow + "backoff    " + textfmt.Reset,
		textfmt.Bold + textfmt.Yellow + "LEADER token 15" + textfmt.Reset,
		textfmt.Red + "last error: exit status 3: rsync: connection refused" + textfmt.Reset,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("coloured output lacks %q:\n%s", want, out)
		}
	}
	plain := strings.NewReplacer(textfmt.Reset, "", textfmt.Bold, "", textfmt.Dim, "", textfmt.Red, "", textfmt.Green, "", textfmt.Yellow, "", textfmt.Cyan, "").Replace(out)
	if plain != golden {
		t.Errorf("without its escapes, the coloured output differs from the plain one:\n%s", plain)
	}
}

// A candidate shows who leads; a lost lease says so; a long error is cut
// to one line.
func TestRenderCandidateAndLoss(t *testing.T) {
	s := sample()
	el := &s.Tree.Children[0]
	el.State, el.Role, el.Token, el.Leader = leasehold.StateCampaigning, "candidate", 0, "node-b"
	s.Tree.Held, s.Tree.HeldUntilMs, s.Tree.State = false, 0, leasehold.StateStopping
	s.Tree.LastError = strings.Repeat("x", 100)
	var b strings.Builder
	if err := Render(&b, s, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"campaigning  for 2m0s   safe 9.2s/10s  term 1  candidate, leader node-b", "stopping     for 2m3s   not held  term 1  token 12", "last error: " + strings.Repeat("x", 71) + "…\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
