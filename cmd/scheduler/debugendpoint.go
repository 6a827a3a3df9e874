package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/leasehold/leasehold/debug"
)

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
