package main

import (
	"crypto/tls"
	"crypto/x509"
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
	fs := flag.NewFlagSet("scheduler tree", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	addr := fs.String("addr", "127.0.0.1:7070", "the node's debug endpoint: host:port or a URL")
	token := fs.String("token", "", "bearer token of the endpoint (better: $"+debugTokenEnv+" or --token-file, out of ps)")
	tokenFile := fs.String("token-file", "", "read --token from this file")
	cacert := fs.String("cacert", "", "verify an https endpoint's certificate with this CA bundle (default: the system's)")
	colorMode := fs.String("color", "auto", "colour states: auto (when stdout is a terminal and $NO_COLOR is unset), always or never")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	whole := fs.Bool("cluster", false, "print every node of the cluster (the node's /debug/cluster.json) instead of one tree")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: scheduler tree [--cluster] [flags]: print a node's live supervision tree, or the whole cluster's")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			fmt.Fprint(stderr, envHelp(fs, treeEnvPrefix, treeEnv))
			return exitOK
		}
		fmt.Fprintf(stderr, "scheduler tree: %v (see scheduler tree -h)\n", err)
		return exitUsage
	}
	if err := applyEnv(fs, treeEnvPrefix, treeEnv); err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
		return exitUsage
	}
	if err := secretFromFile(token, "token", *tokenFile, "token-file"); err != nil {
		fmt.Fprintln(stderr, "scheduler tree:", err)
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
	client := &http.Client{Timeout: *timeout}
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			fmt.Fprintln(stderr, "scheduler tree: --cacert:", err)
			return exitUsage
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "scheduler tree: --cacert %s: no PEM certificate in it\n", *cacert)
			return exitUsage
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	if *whole {
		v, err := fetchJSON[cluster.View](client, base+"/debug/cluster.json", *token)
		if err == nil {
			err = cluster.Render(stdout, v, color)
		}
		if err != nil {
			fmt.Fprintln(stderr, "scheduler tree:", err)
			return exitFailure
		}
		return exitOK
	}
	snap, err := fetchJSON[leasehold.Snapshot](client, base+"/debug/tree.json", *token)
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

// The tree command's flags come from $LEASEHOLD_TREE_<FLAG>; its token
// also from the node's own variables.
const treeEnvPrefix = envPrefix + "_TREE"

var treeEnv = map[string][]string{"token": {debugTokenEnv}, "token-file": {debugTokenEnv + "_FILE"}}

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
