package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const unitFile = "systemd/leasehold-scheduler.service"

// unitKeys reads a unit file's [Service] and [Unit] settings; a key given
// more than once keeps all its values.
func unitKeys(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", file, line)
		}
		keys[k] = append(keys[k], v)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func envFileTTL(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile("systemd/scheduler.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "LEASEHOLD_TTL="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	return 10 * time.Second // the scheduler's default --ttl
}

// The unit restarts the process after exit 75, not after a configuration
// error, stops it gracefully within a timeout above the TTL, and sandboxes
// it with the data directory writable.
func TestSystemdUnitSettings(t *testing.T) {
	keys := unitKeys(t, unitFile)
	one := func(k string) string {
		if len(keys[k]) != 1 {
			t.Errorf("%s: %s set %d times; want once", unitFile, k, len(keys[k]))
			return ""
		}
		return keys[k][0]
	}
	for k, want := range map[string]string{
		"Restart": "on-failure", "RestartForceExitStatus": "75", "RestartPreventExitStatus": "2",
		"KillMode": "mixed", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
		"StateDirectory": "leasehold",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%q; want %q", k, got, want)
		}
	}
	if one("EnvironmentFile") == "" {
		t.Error("no EnvironmentFile")
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if ttl := envFileTTL(t); err != nil || stop < ttl+10*time.Second {
		t.Errorf("TimeoutStopSec %s (%v); want at least the TTL %s plus 10s", one("TimeoutStopSec"), err, ttl)
	}
	// The embedded etcd's data lands in the StateDirectory, the one
	// writable place under ProtectSystem=strict.
	var dataDir string
	for _, e := range keys["Environment"] {
		if v, ok := strings.CutPrefix(e, "LEASEHOLD_DATA_DIR="); ok {
			dataDir = v
		}
	}
	if !strings.HasPrefix(dataDir, "/var/lib/"+one("StateDirectory")+"/") {
		t.Errorf("LEASEHOLD_DATA_DIR %q is outside the StateDirectory /var/lib/%s", dataDir, one("StateDirectory"))
	}
}

// systemd-analyze verify accepts the unit with no warning at all (it
// only warns about unknown keys). ExecStart names the installed binary,
// which verify requires to exist: the copy checked points it at this test
// binary instead.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("systemd-analyze not found; .ci/run installs Debian's systemd: %v", err)
		}
		t.Skip("systemd-analyze not found: install Debian's systemd (apt-get install systemd) to check the unit")
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const execLine = "ExecStart=/usr/local/bin/leasehold-scheduler"
	if !strings.Contains(string(unit), execLine+"\n") {
		t.Fatalf("%s lacks %q", unitFile, execLine)
	}
	dir := t.TempDir()
	copyFile := filepath.Join(dir, filepath.Base(unitFile))
	if err := os.WriteFile(copyFile, []byte(strings.Replace(string(unit), execLine, "ExecStart="+self, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := execCommand(analyze, "verify", copyFile)
	if err != nil || len(strings.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The exposure score (0 best, 10 worst), for the docs.
	if out, err := execCommand(analyze, "security", "--offline=true", copyFile); err == nil {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		t.Log(lines[len(lines)-1])
	}
}

func execCommand(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
