// Package debug serves a running tree to operators: the live supervision
// tree as JSON (/debug/tree.json), as a live HTML page (/debug/tree, fed by
// server-sent events from /debug/tree/events), Prometheus metrics
// (/metrics), Kubernetes-style health checks (/livez, /readyz) and pprof
// (/debug/pprof/), all on the endpoint's own mux. With Options.Cluster (a
// *cluster.Cluster, package debug/cluster) it also serves the whole
// cluster: /debug/cluster, /debug/cluster.json and /debug/cluster/events.
//
// The endpoint is read-only and never blocks the tree: its handlers only
// call Source.Snapshot, which is cheap and never waits for the tree's
// work, and write the result; a client that reads too slowly is dropped
// after a write deadline instead of being buffered for. The only call the
// tree makes into this package is an event handler (Metrics.Observe and
// Server.Observe), which updates counters or wakes the streams without
// waiting.
//
// With Options.Token set, every path requires the token, as
// "Authorization: Bearer <token>" (or, for browsers, as the password of
// HTTP Basic authentication with any user name), compared in constant time.
//
// Render prints a Snapshot as an indented tree for terminals; the
// scheduler's "tree" subcommand uses it.
package debug
