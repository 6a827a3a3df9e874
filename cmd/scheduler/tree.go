package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/leasehold/leasehold"

	"github.com/leasehold/leasehold/debug"
	"github.com/leasehold/leasehold/debug/cluster"
)

// runTree is "scheduler tree": it prints a node's live tree, fetched from
// its debug endpoint, indented like tree(1).
func runTree(args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseTreeFlags(args, stderr)
	if !ok {
		return code
	}
	color, err := useColor(f.colorMode, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return exitUsage
	}
	base := strings.TrimRight(f.addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	client, err := treeClient(f.cacert, f.timeout)
	if err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return exitUsage
	}
	if err := printTree(stdout, client, base, f.token, f.whole, color); err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return exitFailure
	}
	return exitOK
}

// treeFlags are the tree command's flags.
type treeFlags struct {
	addr, token, tokenFile, cacert, colorMode string
	timeout                                   time.Duration
	whole                                     bool
}

// parseTreeFlags reads the tree command's flags and the environment; it
// returns false with the exit status when the command should not go on.
func parseTreeFlags(args []string, stderr io.Writer) (*treeFlags, int, bool) {
	f := &treeFlags{}
	fs := flag.NewFlagSet("scheduler tree", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:7070", "the node's debug endpoint: host:port or a URL")
	fs.StringVar(&f.token, "token", "", "bearer token of the endpoint (better: $"+debugTokenEnv+" or --token-file, out of ps)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read --token from this file")
	fs.StringVar(&f.cacert, "cacert", "", "verify an https endpoint's certificate with this CA bundle (default: the system's)")
	fs.StringVar(&f.colorMode, "color", "auto", "colour states: auto (when stdout is a terminal and $NO_COLOR is unset), always or never")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "give up after this long")
	fs.BoolVar(&f.whole, "cluster", false, "print every node of the cluster (the node's /debug/cluster.json) instead of one tree")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: scheduler tree [--cluster] [flags]: print a node's live supervision tree, or the whole cluster's")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			fmt.Fprint(stderr, envHelp(fs, treeEnvPrefix, treeEnv))
			return nil, exitOK, false
		}
		fmt.Fprintf(stderr, "scheduler tree: %v (see scheduler tree -h)\n", err)
		return nil, exitUsage, false
	}
	if err := applyEnv(fs, treeEnvPrefix, treeEnv); err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return nil, exitUsage, false
	}
	if err := secretFromFile(&f.token, "token", f.tokenFile, "token-file"); err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return nil, exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scheduler tree: unexpected argument %q: flags only (see scheduler tree -h)\n", fs.Arg(0))
		return nil, exitUsage, false
	}
	return f, exitOK, true
}

// useColor resolves --color: auto colours only a terminal whose user has
// not asked for no colour.
func useColor(mode string, stdout io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		return isTerminal(stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb", nil
	}
	return false, fmt.Errorf("--color %q: use auto, always or never", mode)
}

// treeClient is the HTTP client of the tree command: it trusts --cacert,
// when given, instead of the system's roots.
func treeClient(cacert string, timeout time.Duration) (*http.Client, error) {
	client := &http.Client{Timeout: timeout}
	if cacert != "" {
		roots, err := loadCAs(cacert)
		if err != nil {
			return nil, err
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	return client, nil
}

// printTree fetches the node's tree, or with whole the cluster's view, from
// the debug endpoint at base and renders it on stdout.
func printTree(stdout io.Writer, client *http.Client, base, token string, whole, color bool) error {
	if whole {
		v, err := fetchJSON[cluster.View](client, base+"/debug/cluster.json", token)
		if err != nil {
			return err
		}
		return cluster.Render(stdout, v, color)
	}
	snap, err := fetchJSON[leasehold.Snapshot](client, base+"/debug/tree.json", token)
	if err != nil {
		return err
	}
	return debug.Render(stdout, snap, color)
}

// The tree command's flags come from $LEASEHOLD_TREE_<FLAG>; its token
// also from the node's own variables.
const treeEnvPrefix = envPrefix + "_TREE"

var treeEnv = map[string][]string{"token": {debugTokenEnv}, "token-file": {debugTokenEnv + "_FILE"}}

// fetchJSON GETs url from a debug endpoint and decodes its answer, naming
// the fix for the usual failures (no token, wrong token, node not serving).
func fetchJSON[T any](client *http.Client, url, token string) (T, error) {
	var snap T
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return snap, fmt.Errorf("--addr: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
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
