package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// checkEndpoints rejects an endpoint etcd's client would only fail to dial
// after its timeout, such as a misspelt scheme.
func checkEndpoints(endpoints string) error {
	for _, ep := range strings.Split(endpoints, ",") {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			return fmt.Errorf("--endpoints %q: an endpoint is empty: separate endpoints with single commas, e.g. http://10.0.0.1:2379,http://10.0.0.2:2379", endpoints)
		}
		if !strings.Contains(ep, "://") {
			continue // host:port, as etcdctl accepts
		}
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("--endpoints %q: %v: write e.g. http://127.0.0.1:2379", ep, err)
		}
		switch u.Scheme {
		case "http", "https", "unix", "unixs":
		default:
			return fmt.Errorf("--endpoints %q: unknown scheme %q: use http://, https://, unix:// or unixs://, e.g. http://127.0.0.1:2379", ep, u.Scheme)
		}
		if u.Host == "" && u.Path == "" {
			return fmt.Errorf("--endpoints %q: no address: write e.g. http://127.0.0.1:2379", ep)
		}
	}
	return nil
}

// bareNumber matches the flag package's error for a duration flag given a
// number without a unit.
var bareNumber = regexp.MustCompile(`invalid value "(-?[0-9.]+)" for flag -([a-z-]+): parse error`)

// durationHint adds the likely fix to a flag error about a bare number.
func durationHint(err error) error {
	m := bareNumber.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	return fmt.Errorf("--%s %s: a duration needs a unit: write %ss (or ms, m, h)", m[2], m[1], m[1])
}
