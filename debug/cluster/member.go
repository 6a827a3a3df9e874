package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

// Member is the value of a node's registry key: who the node is and where
// its debug endpoint can be reached. Its JSON keeps `etcdctl get` readable.
type Member struct {
	ID       string    `json:"id"`
	DebugURL string    `json:"debug_url,omitempty"` // base URL, e.g. http://10.0.0.5:7070; empty when the endpoint is off
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started,omitzero"`
}

// Encode returns m as one line of JSON.
func (m Member) Encode() string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // a plain struct
	}
	return string(b)
}

// ParseMember reads a registry value: a Member, or the scheduler's NodeInfo
// (whose id is "node"). A value that is not a JSON object is the plain node
// id older nodes wrote; id (from the key) fills a missing ID.
func ParseMember(id string, value []byte) Member {
	var m struct {
		Member
		Node string `json:"node"` // the scheduler's NodeInfo names the id so
	}
	if len(value) == 0 || value[0] != '{' || json.Unmarshal(value, &m) != nil {
		return Member{ID: string(value)}
	}
	if m.ID == "" {
		m.ID = m.Node
	}
	if m.ID == "" {
		m.ID = id
	}
	return m.Member
}

// ErrBadURL wraps every error of CheckURL.
var ErrBadURL = errors.New("cluster: bad debug URL")

// CheckURL validates a debug endpoint's base URL: http or https, a host, and
// nothing else (no user info, path, query or fragment). It returns the URL
// without a trailing slash.
func CheckURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %q: %v", ErrBadURL, raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%w: %q: use http:// or https://", ErrBadURL, raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%w: %q has no host", ErrBadURL, raw)
	case u.User != nil:
		return "", fmt.Errorf("%w: %q carries user info; the token is sent as a header instead", ErrBadURL, raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("%w: %q: give only scheme://host:port", ErrBadURL, raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Version is the running binary's version as the Go toolchain recorded it:
// the main module's version, and the VCS revision when known.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return strings.TrimPrefix(v, "+")
}
