// Package examples holds no code of its own: its test proves that each
// example is a module of its own that builds against leasehold as a user's
// program would, through its own go.mod with nothing but a replace line
// pointing here (an example importing leasehold/internal/... would fail).
package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExamplesBuildAsModulesOfTheirOwn(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to build the examples with: %v", err)
	}
	for _, dir := range []string{"minimal"} {
		t.Run(dir, func(t *testing.T) {
			mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err != nil {
				t.Fatalf("%s has no go.mod of its own: %v", dir, err)
			}
			if !strings.Contains(string(mod), "replace github.com/leasehold/leasehold => ../..") {
				t.Errorf("%s/go.mod does not point leasehold at this checkout with a replace line", dir)
			}
			cmd := exec.Command(goBin, "build", "-o", os.DevNull, ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build in %s as its own module: %v\n%s", dir, err, out)
			}
		})
	}
}
