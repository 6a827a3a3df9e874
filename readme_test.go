package leasehold_test

import (
	"os"
	"strings"
	"testing"
)

// The README's quick start is example_test.go's Example, as a main package:
// the snippet a newcomer pastes is the code the tests compile.
func TestReadmeQuickStartIsTheExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Quick start")
	if !ok {
		t.Fatal("README has no Quick start section")
	}
	_, block, ok := strings.Cut(after, "```go\n")
	if !ok {
		t.Fatal("the Quick start has no go block")
	}
	block, _, _ = strings.Cut(block, "```")

	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(string(example), "package leasehold_test", "package main", 1)
	start := strings.Index(want, "// The README's quick start")
	end := strings.Index(want, "func Example() {")
	if start < 0 || end < 0 {
		t.Fatal("example_test.go lost its Example or its comment")
	}
	want = want[:start] + "func main() {" + want[end+len("func Example() {"):]
	if strings.TrimSpace(block) != strings.TrimSpace(want) {
		t.Errorf("the README's quick start differs from example_test.go's Example; README:\n%s\nexample:\n%s", block, want)
	}
	for _, cmd := range []string{"go run ./cmd/scheduler ", "go test -race ./..."} {
		if !strings.Contains(string(readme), "\n"+cmd) {
			t.Errorf("README lost its set-up command %q", cmd)
		}
	}
}
