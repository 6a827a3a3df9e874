// Package cluster builds the whole cluster's picture from any one node: every
// node registered under the cluster's prefix, each with its live tree fetched
// from its own debug endpoint, the leader of every election with its fencing
// token, and optionally the scheduler's tasks. The debug endpoint serves it
// at /debug/cluster (page), /debug/cluster.json and /debug/cluster/events;
// Render prints it for terminals.
//
// Nodes publish where they can be seen in their registry key's value, a
// Member as JSON (id, debug URL, version, start time); a plain string value
// (older nodes) reads as the node's id without an endpoint.
//
// Costs are bounded whatever the number of viewers: a view is rebuilt at
// most once per Options.Interval, by one caller while the others wait for
// its result (singleflight), and each node's tree is fetched at most once
// per Interval, with a timeout. A node that does not answer in time is shown
// unreachable with the error, never dropped; a node whose registration
// vanished, or whose lease etcd no longer has, is shown gone for a while.
//
// Only URLs read from the registry under the configured prefix are fetched,
// only http and https, and redirects are never followed. The debug token, if
// any, is forwarded as a bearer token: every node of one cluster is expected
// to use the same token.
package cluster
