package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// signals turns SIGINT and SIGTERM into a graceful stop: the first ends the
// returned context; a second one exits at once, unless the tree has already
// stopped (afterStop), when it closes again instead.
type signals struct {
	ctx     context.Context
	again   chan struct{} // closed by a second signal after the tree stopped
	stopped chan struct{} // closed when the tree has stopped
	release func()
}

func watchSignals(log *slog.Logger) *signals {
	ctx, cancel := context.WithCancel(context.Background())
	s := &signals{ctx: ctx, again: make(chan struct{}), stopped: make(chan struct{})}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case got := <-sig:
			log.Info("stopping gracefully: units stop, then leases are revoked; signal again to force", "signal", got.String())
			cancel()
		case <-done:
			return
		}
		select {
		case <-sig:
			select {
			case <-s.stopped:
				close(s.again)
			default:
				log.Error("forced exit")
				os.Exit(exitForced)
			}
		case <-done:
		}
	}()
	s.release = func() {
		signal.Stop(sig)
		close(done)
		cancel()
	}
	return s
}
