package clock_test

import (
	"fmt"
	"time"

	"github.com/leasehold/leasehold/clock"
)

// A lease that expires 10s after it was granted, driven by a Fake clock.
func ExampleFake() {
	clk := clock.NewFake()
	granted := clk.Now()
	expiry := clk.NewTimer(granted.Add(10 * time.Second))
	defer expiry.Stop()

	expired := func() bool {
		select {
		case <-expiry.C():
			return true
		default:
			return false
		}
	}

	clk.Advance(6 * time.Second)
	fmt.Println("after 6s, expired:", expired())

	// Renewal at 6s pushes the deadline to 16s after the grant.
	expiry.Reset(clk.Now().Add(10 * time.Second))
	clk.Advance(6 * time.Second)
	fmt.Println("after 12s, expired:", expired())

	clk.Advance(4 * time.Second)
	fmt.Println("after 16s, expired:", expired(), "at", clk.Now().Sub(granted))
	// Output:
	// after 6s, expired: false
	// after 12s, expired: false
	// after 16s, expired: true at 16s
}
