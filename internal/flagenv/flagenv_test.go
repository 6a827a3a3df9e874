package flagenv_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/flagenv"
)

func newFlags() (*flag.FlagSet, *string, *time.Duration, *string) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("debug-addr", "127.0.0.1:7070", "")
	ttl := fs.Duration("ttl", 10*time.Second, "")
	ep := fs.String("endpoints", "", "")
	return fs, addr, ttl, ep
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var aliases = map[string][]string{"endpoints": {"ETCDCTL_ENDPOINTS"}}

func TestName(t *testing.T) {
	if got := flagenv.Name("LEASEHOLD", "debug-token-file"); got != "LEASEHOLD_DEBUG_TOKEN_FILE" {
		t.Errorf("got %q; want LEASEHOLD_DEBUG_TOKEN_FILE", got)
	}
}

// The command line beats the prefixed variable, which beats an alias,
// which beats the default; a variable set to "" still counts.
func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name             string
		args             []string
		vars             map[string]string
		wantAddr, wantEP string
		wantTTL          time.Duration
	}{
		{"defaults", nil, nil, "127.0.0.1:7070", "", 10 * time.Second},
		{"env", nil, map[string]string{"LEASEHOLD_DEBUG_ADDR": "", "LEASEHOLD_TTL": "4s", "ETCDCTL_ENDPOINTS": "https://e:2379"}, "", "https://e:2379", 4 * time.Second},
		{"prefixed beats alias", nil, map[string]string{"LEASEHOLD_ENDPOINTS": "http://a:2379", "ETCDCTL_ENDPOINTS": "http://b:2379"}, "127.0.0.1:7070", "http://a:2379", 10 * time.Second},
		{"flag beats env", []string{"--ttl", "6s", "--endpoints", "http://f:2379"}, map[string]string{"LEASEHOLD_TTL": "4s", "LEASEHOLD_ENDPOINTS": "http://a:2379", "ETCDCTL_ENDPOINTS": "http://b:2379"}, "127.0.0.1:7070", "http://f:2379", 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, addr, ttl, ep := newFlags()
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := flagenv.Apply(fs, "LEASEHOLD", aliases, env(tc.vars)); err != nil {
				t.Fatal(err)
			}
			if *addr != tc.wantAddr || *ep != tc.wantEP || *ttl != tc.wantTTL {
				t.Errorf("addr %q, endpoints %q, ttl %v; want %q, %q, %v", *addr, *ep, *ttl, tc.wantAddr, tc.wantEP, tc.wantTTL)
			}
		})
	}
}

// A bad value names the variable and the flag, and never repeats the
// value.
func TestBadValueNamesTheVariable(t *testing.T) {
	fs, _, _, _ := newFlags()
	_ = fs.Parse(nil)
	err := flagenv.Apply(fs, "LEASEHOLD", aliases, env(map[string]string{"LEASEHOLD_TTL": "hunter2-secret"}))
	if err == nil || !strings.Contains(err.Error(), "$LEASEHOLD_TTL: invalid value for --ttl") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("got %v; want an error naming $LEASEHOLD_TTL and --ttl, without the value", err)
	}
}

func TestUnknownAliasIsAnError(t *testing.T) {
	fs, _, _, _ := newFlags()
	_ = fs.Parse(nil)
	if err := flagenv.Apply(fs, "LEASEHOLD", map[string][]string{"nope": {"X"}}, env(nil)); err == nil {
		t.Error("an alias for a flag that does not exist was accepted")
	}
}

func TestDescribe(t *testing.T) {
	fs, _, _, _ := newFlags()
	got := strings.Join(flagenv.Describe(fs, "LEASEHOLD", aliases), "\n")
	want := "--debug-addr: $LEASEHOLD_DEBUG_ADDR\n--endpoints: $LEASEHOLD_ENDPOINTS, then $ETCDCTL_ENDPOINTS\n--ttl: $LEASEHOLD_TTL"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// A variable with the prefix that sets no flag is reported, unless it
// starts with an ignored prefix.
func TestUnknown(t *testing.T) {
	fs, _, _, _ := newFlags()
	got := flagenv.Unknown(fs, "LEASEHOLD", []string{"LEASEHOLD_TTL=5s", "LEASEHOLD_DEBUG_ADR=x", "LEASEHOLD_TREE_ADDR=y", "PATH=/bin", "LEASEHOLDER=1", "ETCDCTL_ENDPOINTS=z"}, "LEASEHOLD_TREE_")
	if len(got) != 1 || got[0] != "LEASEHOLD_DEBUG_ADR" {
		t.Errorf("got %q; want [LEASEHOLD_DEBUG_ADR]", got)
	}
}
