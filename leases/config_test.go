package leases

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{TTL: 6 * time.Second}.WithDefaults()
	if c.RenewInterval != 2*time.Second || c.StopBudget != 2*time.Second {
		t.Errorf("RenewInterval, StopBudget = %s, %s; want 2s, 2s", c.RenewInterval, c.StopBudget)
	}
	if c.Rho != DefaultRho || c.Guard != DefaultGuard || c.Clock == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v; want valid defaults", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // a word the error must contain: the field's name
	}{
		{"ttl below minimum", Config{TTL: time.Second}, "TTL 1s is below"},
		{"fractional ttl", Config{TTL: 2500 * time.Millisecond}, "whole number of seconds"},
		{"negative renew", Config{RenewInterval: -1}, "RenewInterval"},
		{"negative budget", Config{StopBudget: -1}, "StopBudget"},
		{"negative guard", Config{Guard: -1}, "Guard"},
		{"rho", Config{Rho: 1.5}, "Rho"},
		{"budget too big", Config{TTL: 10 * time.Second, StopBudget: 7 * time.Second}, "StopBudget 7s does not fit inside TTL 10s"},
		{"renew too slow", Config{TTL: 3 * time.Second, RenewInterval: 2 * time.Second}, "lower StopBudget or RenewInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v; want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %q; want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestHeldFor(t *testing.T) {
	// A 10s TTL with 1e-3 drift and a 50ms guard is held for 9.99s - 50ms.
	got := heldFor(10*time.Second, 1e-3, 50*time.Millisecond)
	ttl := 10 * time.Second
	want := time.Duration(float64(ttl)/1.001) - 50*time.Millisecond
	if got != want {
		t.Errorf("heldFor = %s; want %s", got, want)
	}
	if got >= 10*time.Second-50*time.Millisecond {
		t.Errorf("heldFor = %s; must be shorter than TTL - guard", got)
	}
}
