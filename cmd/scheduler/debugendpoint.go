package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/debug"
	"github.com/leasehold/leasehold/services/scheduler"
)

// debugEndpoint is the node's debug endpoint, built in two steps: its
// listener opens before the node's registry key is written, since the key
// holds its URL; its server once the runtime exists. Without --debug-addr
// it is off and every field is nil.
type debugEndpoint struct {
	ln net.Listener
	// The binary's own registry: the tree's and the scheduler's metrics,
	// Go's and the process's.
	reg          *prometheus.Registry
	schedMetrics *scheduler.Metrics
	// The metrics and the live stream see every event. The runtime takes
	// its event handler (observe) before they can be built on it, so they
	// are set here, before Run.
	metrics *debug.Metrics
	server  *debug.Server
}

// listenDebug opens the debug endpoint's listener and its registry when
// --debug-addr is set.
func listenDebug(o *options) (*debugEndpoint, error) {
	d := &debugEndpoint{}
	if o.debugAddr == "" {
		return d, nil
	}
	d.reg = prometheus.NewRegistry()
	d.schedMetrics = scheduler.NewMetrics(d.reg)
	ln, err := net.Listen("tcp", o.debugAddr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr %s: %v (pass --debug-addr '' to disable)", o.debugAddr, err)
	}
	d.ln = ln
	return d, nil
}

// on reports whether the node serves a debug endpoint.
func (d *debugEndpoint) on() bool { return d.ln != nil }

// closeListener closes the listener, if one was opened.
func (d *debugEndpoint) closeListener() {
	if d.ln != nil {
		d.ln.Close()
	}
}

// observe is the runtime's event handler while the endpoint is on.
func (d *debugEndpoint) observe(e leasehold.Event) {
	d.metrics.Observe(e)
	d.server.Observe(e)
}

// serve builds the endpoint's metrics, cluster view and server on rt and
// serves them until the returned func is called.
func (d *debugEndpoint) serve(n *nodeConfig, client *clientv3.Client, layout scheduler.Layout, rt *leasehold.Runtime, ready func() error) (func(), error) {
	o := n.o
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = debug.NewMetrics(d.reg, rt)
	cl, err := newCluster(o, client, layout, n.tasks, rt, n.log)
	if err != nil {
		return nil, err
	}
	d.server = debug.New(rt, debug.Options{Token: o.debugToken, PublicHealth: o.debugPublicHealth, Logger: n.log, Gatherer: d.reg, Cluster: cl, Ready: ready})
	stopServing := serveDebug(d.ln, o.debugAddr, o.debugToken != "", n.debugTLS, d.server, n.log)
	return func() {
		stopServing()
		cl.Close()
	}, nil
}

// serveDebug serves the debug endpoint on ln (listening on addr), over HTTPS
// when tc is not nil, until the returned func is called.
func serveDebug(ln net.Listener, addr string, withToken bool, tc *tls.Config, dbg *debug.Server, log *slog.Logger) func() {
	scheme := "http://"
	if tc != nil {
		ln = tls.NewListener(ln, tc)
		scheme = "https://"
	}
	// No WriteTimeout or ReadTimeout: live streams are long requests. The
	// debug server sets a write deadline on every write itself.
	srv := &http.Server{
		Handler:           dbg.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	srv.RegisterOnShutdown(dbg.Close)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug endpoint stopped", "err", err)
		}
	}()
	url := scheme + ln.Addr().String()
	host, _, _ := net.SplitHostPort(addr)
	switch {
	case !loopback(host) && tc == nil:
		// Anyone on the path can read the token and replay it.
		log.Warn("debug endpoint on a non-loopback address over plain HTTP: the bearer token travels in clear; serve HTTPS with --debug-cert/--debug-key, or use a trusted network or a tunnel",
			"tree", url+"/debug/tree", "metrics", url+"/metrics")
	case withToken:
		log.Info("debug endpoint (bearer token required)", "tree", url+"/debug/tree", "metrics", url+"/metrics")
	default:
		log.Info("debug endpoint: "+url+"/debug/tree", "metrics", url+"/metrics")
	}
	return func() {
		dbg.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}
}
