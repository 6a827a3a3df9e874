// Package evtest records events in tests and awaits them without sleeps.
//
// A Log keeps every event in arrival order and a cursor. Next waits for the
// first matching event after the last one Next returned, so awaiting the same
// kind twice waits for a second occurrence instead of returning the first
// again (a flaw that made tests pass or fail by timing). First waits for a
// matching event anywhere in the log, for events whose order against others
// the test does not know.
package evtest

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// WaitLimit bounds every wait: far beyond any healthy run, it turns a hang
// into a failure.
const WaitLimit = 60 * time.Second

// Log records events of type E. The zero value is not usable; use New.
type Log[E any] struct {
	mu      sync.Mutex
	events  []E
	cursor  int           // index after the event Next returned last
	changed chan struct{} // closed and replaced on every event
}

// New returns an empty Log.
func New[E any]() *Log[E] { return &Log[E]{changed: make(chan struct{})} }

// Add records e; plug it into the code's event hook.
func (l *Log[E]) Add(e E) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	close(l.changed)
	l.changed = make(chan struct{})
}

// Next waits for the first event that matches after the one Next returned
// last, moves the cursor past it, and returns it with its index.
func (l *Log[E]) Next(t testing.TB, what string, match func(E) bool) (E, int) {
	t.Helper()
	return l.await(t, what, true, match)
}

// First waits for the first event that matches anywhere in the log and
// returns it with its index; the cursor does not move.
func (l *Log[E]) First(t testing.TB, what string, match func(E) bool) (E, int) {
	t.Helper()
	return l.await(t, what, false, match)
}

// Nth waits for the nth event (from 1) that matches anywhere in the log.
func (l *Log[E]) Nth(t testing.TB, what string, nth int, match func(E) bool) (E, int) {
	t.Helper()
	return l.scan(t, what, func(events []E, _ int) int {
		seen := 0
		for i, e := range events {
			if match(e) {
				if seen++; seen == nth {
					return i
				}
			}
		}
		return -1
	})
}

func (l *Log[E]) await(t testing.TB, what string, advance bool, match func(E) bool) (E, int) {
	t.Helper()
	e, i := l.scan(t, what, func(events []E, cursor int) int {
		from := 0
		if advance {
			from = cursor
		}
		for i := from; i < len(events); i++ {
			if match(events[i]) {
				return i
			}
		}
		return -1
	})
	if advance {
		l.mu.Lock()
		l.cursor = max(l.cursor, i+1)
		l.mu.Unlock()
	}
	return e, i
}

// scan waits until find, given the events and the cursor, returns an index.
func (l *Log[E]) scan(t testing.TB, what string, find func(events []E, cursor int) int) (E, int) {
	t.Helper()
	timeout := time.NewTimer(WaitLimit)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		if i := find(l.events, l.cursor); i >= 0 {
			e := l.events[i]
			l.mu.Unlock()
			return e, i
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("no %s event within %s; events: %s", what, WaitLimit, l.String())
			var zero E
			return zero, -1
		}
	}
}

// All returns a copy of the events so far.
func (l *Log[E]) All() []E {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]E(nil), l.events...)
}

// Count counts the events so far that match.
func (l *Log[E]) Count(match func(E) bool) int {
	n := 0
	for _, e := range l.All() {
		if match(e) {
			n++
		}
	}
	return n
}

func (l *Log[E]) String() string {
	s := ""
	for i, e := range l.All() {
		s += fmt.Sprintf("\n  %d: %+v", i, e)
	}
	return s
}
