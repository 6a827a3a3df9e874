package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Sample is a set of measured durations.
type Sample []time.Duration

// sorted returns a sorted copy.
func (s Sample) sorted() Sample {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// Min is the smallest value, or 0 for an empty sample.
func (s Sample) Min() time.Duration {
	if len(s) == 0 {
		return 0
	}
	return slices.Min(s)
}

// Max is the largest value, or 0 for an empty sample.
func (s Sample) Max() time.Duration {
	if len(s) == 0 {
		return 0
	}
	return slices.Max(s)
}

// Median is the middle value; for an even count, the mean of the two middle
// values. It is 0 for an empty sample.
func (s Sample) Median() time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := s.sorted()
	mid := len(c) / 2
	if len(c)%2 == 1 {
		return c[mid]
	}
	return c[mid-1] + (c[mid]-c[mid-1])/2
}

// Percentile is the nearest-rank percentile p (0 < p <= 100): the smallest
// value at least p percent of the sample is at or below. It is 0 for an
// empty sample. p99 of 200 values is the 198th smallest.
func (s Sample) Percentile(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := s.sorted()
	rank := int(math.Ceil(p / 100 * float64(len(c))))
	rank = min(max(rank, 1), len(c))
	return c[rank-1]
}

// Negative counts the values below zero.
func (s Sample) Negative() int {
	n := 0
	for _, d := range s {
		if d < 0 {
			n++
		}
	}
	return n
}

// Above counts the values above d.
func (s Sample) Above(d time.Duration) int {
	n := 0
	for _, v := range s {
		if v > d {
			n++
		}
	}
	return n
}

// Ints is a set of counts.
type Ints []int64

// Median is the middle count (the lower middle one for an even count), or 0.
func (s Ints) Median() int64 {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return c[(len(c)-1)/2]
}

// Max is the largest count, or 0.
func (s Ints) Max() int64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Max(s)
}

// ms formats d in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// signedMs formats d in milliseconds with an explicit sign.
func signedMs(d time.Duration) string {
	s := ms(d)
	if d >= 0 {
		return "+" + s
	}
	return "−" + strings.TrimPrefix(s, "-")
}

// bytesIEC formats a byte count per item, such as 1.9 KiB.
func bytesIEC(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// thousands formats n with thin separators: 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
