package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/leasehold/leasehold/debug"
	"github.com/leasehold/leasehold/debug/cluster"
	"github.com/leasehold/leasehold/supervisor"
)

// runTree is "scheduler tree": it prints a node's live tree, fetched from
// its debug endpoint, indented like tree(1).
func runTree(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scheduler tree", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	addr := fs.String("addr", "127.0.0.1:7070", "the node's debug endpoint: host:port or a URL")
	token := fs.String("token", os.Getenv(debugTokenEnv), "bearer token of the endpoint (default $"+debugTokenEnv+")")
	colorMode := fs.String("color", "auto", "colour states: auto (when stdout is a terminal and $NO_COLOR is unset), always or never")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	whole := fs.Bool("cluster", false, "print every node of the cluster (the node's /debug/cluster.json) instead of one tree")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: scheduler tree [--cluster] [flags]: print a node's live supervision tree, or the whole cluster's")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "scheduler tree: %v (see scheduler tree -h)\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scheduler tree: unexpected argument %q: flags only (see scheduler tree -h)\n", fs.Arg(0))
		return exitUsage
	}
	var color bool
	switch *colorMode {
	case "always":
		color = true
	case "never":
	case "auto":
		color = isTerminal(stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	default:
		fmt.Fprintf(stderr, "scheduler tree: --color %q: use auto, always or never\n", *colorMode)
		return exitUsage
	}
	base := strings.TrimRight(*addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if *whole {
		v, err := fetchJSON[cluster.View](base+"/debug/cluster.json", *token, *timeout)
		if err == nil {
			err = cluster.Render(stdout, v, color)
		}
		if err != nil {
			fmt.Fprintln(stderr, "scheduler tree:", err)
			return exitFailure
		}
		return exitOK
	}
	snap, err := fetchJSON[supervisor.Snapshot](base+"/debug/tree.json", *token, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return exitFailure
	}
	if err := debug.Render(stdout, snap, color); err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return exitFailure
	}
	return exitOK
}

func fetchJSON[T any](url, token string, timeout time.Duration) (T, error) {
	var snap T
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return snap, fmt.Errorf("--addr: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return snap, fmt.Errorf("cannot reach the debug endpoint: %w (is the node running with --debug-addr?)", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized && token == "":
		return snap, fmt.Errorf("%s: 401 unauthorized: the endpoint needs a token: pass --token or set %s", url, debugTokenEnv)
	case resp.StatusCode == http.StatusUnauthorized:
		return snap, fmt.Errorf("%s: 401 unauthorized: wrong token", url)
	case resp.StatusCode != http.StatusOK:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return snap, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&snap); err != nil {
		return snap, fmt.Errorf("%s: unreadable answer: %w", url, err)
	}
	return snap, nil
}

// isTerminal reports whether w is a character device, as a terminal is.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
