package scheduler

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
)

// LogWriter returns a writer that logs each line written to it, with the
// task's name: where the binary sends command output.
func LogWriter(log *slog.Logger, task string) io.Writer {
	return &lineLogger{log: log.With("task", task)}
}

// lineLogger is shared by a command's stdout and stderr, which are copied
// on goroutines of their own.
type lineLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log.Info("output", "line", string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}
