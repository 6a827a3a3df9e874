package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// DefaultRetryBackoff is the wait before the first retry of a failed run
// when a task sets no retry_backoff.
const DefaultRetryBackoff = 5 * time.Second

// MaxRetryBackoff caps the doubling wait between retries.
const MaxRetryBackoff = 10 * time.Minute

// RetryDelay returns how long after its failure attempt n (1 for the first
// run) is retried: RetryBackoff doubled for every attempt after the first,
// at most MaxRetryBackoff (or RetryBackoff, if that is larger).
func (t *Task) RetryDelay(attempt int) time.Duration {
	d := t.RetryBackoff
	if d <= 0 {
		d = DefaultRetryBackoff
	}
	limit := max(MaxRetryBackoff, d)
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Hash identifies the task's definition: two nodes whose tasks of one name
// have the same Hash run the same command on the same slots with the same
// policy. It is short hex, for keys and logs.
func (t *Task) Hash() string {
	missed := t.Missed
	if missed == "" {
		missed = MissedLatest
	}
	h := sha256.New()
	// %q keeps the fields apart whatever they contain.
	fmt.Fprintf(h, "%q %q %q %d %d %d %q", t.Name, t.Schedule, t.Command, t.Timeout, t.Retries, t.RetryBackoff, missed)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
