package main

import (
	"context"
	"fmt"
	"log/slog"
)

// textTime shows milliseconds: handovers take milliseconds.
const textTime = "15:04:05.000"

// replaceAttr gives every attribute one form in both log formats: lease
// ids in hex as etcdctl and the debug endpoint show them (JSON would print
// a decimal int64 that jq rounds), durations as text such as 1.5s (JSON
// would print nanoseconds).
func replaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; {
	case a.Key == "lease_id" && v.Kind() == slog.KindInt64:
		return slog.String(a.Key, fmt.Sprintf("%x", v.Int64()))
	case v.Kind() == slog.KindDuration:
		return slog.String(a.Key, v.Duration().String())
	}
	return a
}

// runtimeLog is the runtime's logger: the runtime names the tree node a
// record is about "node", which in this binary's logs means the node id;
// it becomes "path", and every record carries node=<node id>.
func runtimeLog(log *slog.Logger, nodeID string) *slog.Logger {
	return slog.New(pathHandler{log.Handler()}).With("node", nodeID)
}

type pathHandler struct{ slog.Handler }

func (h pathHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "node" {
			a.Key = "path"
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h pathHandler) WithAttrs(as []slog.Attr) slog.Handler {
	// Attributes bound with With are the binary's own (node = node id).
	return pathHandler{h.Handler.WithAttrs(as)}
}

func (h pathHandler) WithGroup(name string) slog.Handler {
	return pathHandler{h.Handler.WithGroup(name)}
}
