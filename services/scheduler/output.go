package scheduler

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"unicode/utf8"
)

// Output returns where one unit's command output goes: a writer per
// stream, closed once the command has ended. log carries the unit's task,
// slot, attempt and node.
type Output func(log *slog.Logger) (stdout, stderr io.WriteCloser)

// DefaultMaxLine is the longest output line LogLines logs as one record.
const DefaultMaxLine = 4096

// LogLines is the Output that logs each line of a command's output as an
// "output" record with stream=stdout or stderr. A line longer than maxLine
// bytes (default DefaultMaxLine) is logged in pieces of maxLine, the
// later ones marked continued; an unterminated last line is logged when the
// stream is closed.
func LogLines(maxLine int) Output {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return func(log *slog.Logger) (io.WriteCloser, io.WriteCloser) {
		return &lineLogger{log: log, stream: "stdout", max: maxLine},
			&lineLogger{log: log, stream: "stderr", max: maxLine}
	}
}

// lineLogger logs one stream line by line. The guard copies each stream on
// a goroutine of its own; the mutex also covers a Close racing a late
// Write.
type lineLogger struct {
	log       *slog.Logger
	stream    string
	max       int
	mu        sync.Mutex
	buf       []byte
	continued bool // the buffered text continues a line already partly logged
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		switch {
		case i >= 0 && i <= l.max:
			l.emit(l.buf[:i])
			l.buf, l.continued = l.buf[i+1:], false
		case len(l.buf) > l.max:
			// Cut at a rune boundary so each piece is valid text.
			cut := l.max
			for cut > 0 && !utf8.RuneStart(l.buf[cut]) {
				cut--
			}
			if cut == 0 {
				cut = l.max
			}
			l.emit(l.buf[:cut])
			l.buf, l.continued = l.buf[cut:], true
		default:
			// Keep the capacity bounded: compact what is left.
			l.buf = append(l.buf[:0:0], l.buf...)
			return len(p), nil
		}
	}
}

// Close logs an unterminated last line.
func (l *lineLogger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
	return nil
}

func (l *lineLogger) emit(line []byte) {
	if l.continued {
		l.log.Info("output", "stream", l.stream, "line", string(line), "continued", true)
		return
	}
	l.log.Info("output", "stream", l.stream, "line", string(line))
}
