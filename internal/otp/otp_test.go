package otp_test

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/otp"
)

func TestBackoffDelay(t *testing.T) {
	b := otp.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	for n, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 50 * time.Millisecond, 40: 50 * time.Millisecond} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %s; want %s", n, got, want)
		}
	}
	if d := (otp.Backoff{}).WithDefaults(); d.Min != 100*time.Millisecond || d.Max != 10*time.Second {
		t.Errorf("defaults = %+v", d)
	}
}
