package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/bench"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	cfg, verbose, err := parseFlags(nil, &stderr)
	if err != nil || !verbose {
		t.Fatalf("no flags: %v, verbose %v", err, verbose)
	}
	def := bench.DefaultConfig()
	if cfg.SplitTrials != def.SplitTrials || cfg.Handovers != def.Handovers || !slices.Equal(cfg.TeardownSizes, def.TeardownSizes) || len(cfg.Endpoints) != 0 {
		t.Errorf("no flags: %+v; want the defaults", cfg)
	}

	cfg, _, err = parseFlags([]string{"--quick", "--trials", "3", "--endpoints", "http://a:2379,http://b:2379"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	quick := bench.QuickConfig()
	if !cfg.Quick || cfg.Handovers != quick.Handovers || cfg.SplitTrials != 3 {
		t.Errorf("--quick --trials 3: %+v; want quick sizes but 3 trials", cfg)
	}
	if !slices.Equal(cfg.Endpoints, []string{"http://a:2379", "http://b:2379"}) {
		t.Errorf("endpoints %v", cfg.Endpoints)
	}

	cfg, _, err = parseFlags([]string{"--sizes", "5,50", "--candidates", "2", "--idle", "3s", "-v=false"}, &stderr)
	if err != nil || !slices.Equal(cfg.TeardownSizes, []int{5, 50}) || !slices.Equal(cfg.Candidates, []int{2}) || cfg.Idle != 3*time.Second {
		t.Errorf("sizes: %+v, %v", cfg, err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--sizes", "10,x"},
		{"--candidates", "0"},
		{"--trials", "0"},
		{"--idle", "10ms"},
		{"--nope"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d; want %d", args, code, exitUsage)
		}
		if !strings.HasPrefix(stderr.String(), "bench: ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: stderr %q; want one line", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "--endpoints") && !strings.Contains(stderr.String(), "-endpoints") {
		t.Errorf("-h: exit %d, usage %q", code, stderr.String())
	}
}
