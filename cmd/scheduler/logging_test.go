package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"
)

// JSON logs show lease ids in hex and durations as text; the runtime's
// tree path is "path" and "node" is the node id; text logs have
// milliseconds.
func TestLogAttributes(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("json", "debug", &buf)
	if err != nil {
		t.Fatal(err)
	}
	runtimeLog(log, "n1").Info("elected", "node", "registry/election", "lease_id", int64(0x694d9a1b2c3d4e5f), "ttl", 10*time.Second)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"node": "n1", "path": "registry/election", "lease_id": "694d9a1b2c3d4e5f", "ttl": "10s"} {
		if rec[k] != want {
			t.Errorf("%s = %v; want %q (record %s)", k, rec[k], want, buf.String())
		}
	}
	buf.Reset()
	log, _ = newLogger("text", "info", &buf)
	log.Info("x")
	if !regexp.MustCompile(`\d\d:\d\d:\d\d\.\d\d\d`).MatchString(buf.String()) {
		t.Errorf("text record %q; want a millisecond timestamp first", buf.String())
	}
}
