package bench

import (
	"testing"
	"time"
)

func TestSampleStats(t *testing.T) {
	ms := func(ns ...int) Sample {
		s := make(Sample, len(ns))
		for i, n := range ns {
			s[i] = time.Duration(n) * time.Millisecond
		}
		return s
	}
	for _, tc := range []struct {
		name             string
		s                Sample
		min, median, max time.Duration
		negative         int
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 0},
		{"odd, unsorted", ms(5, -3, 9), -3 * time.Millisecond, 5 * time.Millisecond, 9 * time.Millisecond, 1},
		{"even: mean of the middle two", ms(4, 1, 3, 10), time.Millisecond, 3500 * time.Microsecond, 10 * time.Millisecond, 0},
		{"all negative", ms(-1, -2), -2 * time.Millisecond, -1500 * time.Microsecond, -time.Millisecond, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Min(); got != tc.min {
				t.Errorf("Min = %s; want %s", got, tc.min)
			}
			if got := tc.s.Median(); got != tc.median {
				t.Errorf("Median = %s; want %s", got, tc.median)
			}
			if got := tc.s.Max(); got != tc.max {
				t.Errorf("Max = %s; want %s", got, tc.max)
			}
			if got := tc.s.Negative(); got != tc.negative {
				t.Errorf("Negative = %d; want %d", got, tc.negative)
			}
		})
	}
}

func TestStatsDoNotReorderTheSample(t *testing.T) {
	s := Sample{3, 1, 2}
	_ = s.Median()
	_ = s.Percentile(50)
	if s[0] != 3 || s[1] != 1 || s[2] != 2 {
		t.Errorf("sample reordered: %v", s)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	// 1..200 ms: p50 is the 100th value, p99 the 198th, p100 the max.
	s := make(Sample, 200)
	for i := range s {
		s[len(s)-1-i] = time.Duration(i+1) * time.Millisecond // reversed
	}
	for p, want := range map[float64]time.Duration{
		50:  100 * time.Millisecond,
		99:  198 * time.Millisecond,
		100: 200 * time.Millisecond,
		0.1: time.Millisecond, // rank rounds up to the first value
		0:   time.Millisecond, // clamped
	} {
		if got := s.Percentile(p); got != want {
			t.Errorf("p%g = %s; want %s", p, got, want)
		}
	}
	// Few values: p99 of 5 is the max; p50 of 4 is the 2nd.
	if got := (Sample{5, 1, 4, 2, 3}).Percentile(99); got != 5 {
		t.Errorf("p99 of 5 values = %d; want the max", got)
	}
	if got := (Sample{4, 1, 3, 2}).Percentile(50); got != 2 {
		t.Errorf("p50 of 4 values = %d; want the 2nd", got)
	}
	if got := Sample(nil).Percentile(50); got != 0 {
		t.Errorf("p50 of nothing = %d; want 0", got)
	}
}

func TestAbove(t *testing.T) {
	s := Sample{10, 50, 51, 90}
	if got := s.Above(50); got != 2 {
		t.Errorf("Above(50) = %d; want 2 (strictly above)", got)
	}
}

func TestInts(t *testing.T) {
	if got := (Ints{5, 3, 9, 4}).Median(); got != 4 {
		t.Errorf("Median = %d; want the lower middle, 4", got)
	}
	if got := (Ints{5, 3, 9}).Median(); got != 5 {
		t.Errorf("Median = %d; want 5", got)
	}
	if got := (Ints{5, 3, 9}).Max(); got != 9 {
		t.Errorf("Max = %d; want 9", got)
	}
	if (Ints{}).Median() != 0 || (Ints{}).Max() != 0 {
		t.Error("empty Ints should give 0")
	}
}

func TestFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1234 * time.Millisecond:  "+1234",
		-908 * time.Millisecond:  "−908",
		12345 * time.Microsecond: "+12.3",
		2500 * time.Microsecond:  "+2.50",
		0:                        "+0.00",
	} {
		if got := signedMs(d); got != want {
			t.Errorf("signedMs(%s) = %q; want %q", d, got, want)
		}
	}
	for n, want := range map[int]string{10: "10", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
	for b, want := range map[float64]string{512: "512 B", 2048: "2.0 KiB", 3 << 20: "3.0 MiB", -100: "-100 B"} {
		if got := bytesIEC(b); got != want {
			t.Errorf("bytesIEC(%g) = %q; want %q", b, got, want)
		}
	}
}
