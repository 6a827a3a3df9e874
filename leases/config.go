package leases

import (
	"fmt"
	"time"

	"github.com/leasehold/leasehold/clock"
)

// Defaults of Config's zero fields.
const (
	DefaultTTL   = 10 * time.Second
	DefaultRho   = 1e-3
	DefaultGuard = 50 * time.Millisecond
	// MinTTL is etcd's default minimum lease TTL (1.5 election timeouts of
	// the default 1 s, rounded up to whole seconds). etcd silently raises
	// shorter TTLs; Grant reports that as ErrTTLRaised.
	MinTTL = 2 * time.Second
)

// Config says how a Lease is granted, renewed and given up. The zero value of
// each field selects its documented default.
type Config struct {
	// TTL is the lease's time to live in etcd, a whole number of seconds, at
	// least MinTTL. Default DefaultTTL. A longer TTL survives longer etcd
	// hiccups; a shorter one lets a successor in sooner after a crash.
	TTL time.Duration
	// RenewInterval is the time between renewals. Default TTL/3.
	RenewInterval time.Duration
	// StopBudget is how long before HeldUntil the lease is declared lost
	// locally, leaving that long for the work under it to stop. Default TTL/3.
	StopBudget time.Duration
	// Rho bounds the clock-rate difference between this host and the etcd
	// leader, as a fraction: held time is TTL/(1+Rho). Default DefaultRho,
	// which covers NTP's 500 ppm slew limit twice over.
	Rho float64
	// Guard is subtracted from HeldUntil for timer jitter. Default DefaultGuard.
	Guard time.Duration
	// Clock measures deadlines. Default clock.Boot, which keeps counting
	// through system suspend.
	Clock clock.Clock
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.TTL / 3
	}
	if c.StopBudget == 0 {
		c.StopBudget = c.TTL / 3
	}
	if c.Rho == 0 {
		c.Rho = DefaultRho
	}
	if c.Guard == 0 {
		c.Guard = DefaultGuard
	}
	if c.Clock == nil {
		c.Clock = clock.Boot
	}
	return c
}

// Validate reports the first invalid field of c (after defaults), naming the
// field and the fix. Every error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.TTL < MinTTL:
		return bad("TTL %s is below etcd's minimum lease TTL %s: set TTL to at least %s", c.TTL, MinTTL, MinTTL)
	case c.TTL%time.Second != 0:
		return bad("TTL %s is not a whole number of seconds (etcd grants seconds): round it, e.g. %s", c.TTL, c.TTL.Round(time.Second))
	case c.RenewInterval < 0:
		return bad("RenewInterval %s is negative: leave it zero for TTL/3", c.RenewInterval)
	case c.StopBudget < 0:
		return bad("StopBudget %s is negative: leave it zero for TTL/3", c.StopBudget)
	case c.Guard < 0:
		return bad("Guard %s is negative: leave it zero for %s", c.Guard, DefaultGuard)
	case c.Rho < 0 || c.Rho >= 1:
		return bad("Rho %g is outside [0, 1): it is a clock-rate bound such as 1e-3", c.Rho)
	}
	// Between a renewal's send and FenceAt there must be room for the next
	// renewal to be sent and acknowledged, or a healthy lease would be
	// declared lost between two renewals.
	held := c.held()
	if need := c.RenewInterval + c.StopBudget; need >= held {
		return bad("StopBudget %s does not fit inside TTL %s: RenewInterval (%s) + StopBudget must be below TTL/(1+Rho) - Guard = %s; lower StopBudget or RenewInterval, or raise TTL",
			c.StopBudget, c.TTL, c.RenewInterval, held)
	}
	return nil
}

// held is how long after a renewal's send time the lease is held locally.
func (c Config) held() time.Duration {
	return heldFor(c.TTL, c.Rho, c.Guard)
}

// heldFor shrinks a granted ttl for drift and jitter: the timeline of one
// renewal is sent + heldFor(ttl).
func heldFor(ttl time.Duration, rho float64, guard time.Duration) time.Duration {
	return time.Duration(float64(ttl)/(1+rho)) - guard
}
