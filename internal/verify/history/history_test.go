package history

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAppendAndRead(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "n1.1.jsonl"), Event{Node: "n1", Inc: 1, PID: 42, Mode: "leasehold"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if err := w.Append(Event{Kind: Act, Token: int64(g*1000 + i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	events, torn, err := ReadDir(dir)
	if err != nil || len(torn) != 0 {
		t.Fatalf("ReadDir: %v, torn %v", err, torn)
	}
	if len(events) != 1600 {
		t.Fatalf("%d events; want 1600", len(events))
	}
	seen := map[int64]bool{}
	for _, e := range events {
		if e.Node != "n1" || e.Inc != 1 || e.PID != 42 || e.Mode != "leasehold" || e.At == 0 || e.File != "n1.1.jsonl" {
			t.Fatalf("event not stamped: %+v", e)
		}
		seen[e.Token] = true
	}
	if len(seen) != 1600 {
		t.Errorf("%d distinct events; want 1600", len(seen))
	}
}

// A process killed in the middle of a line leaves a torn last line: it is
// dropped and reported. A bad line anywhere else is an error.
func TestTornLastLine(t *testing.T) {
	good := `{"node":"a","kind":"act","at":1,"token":5}` + "\n"
	events, torn, err := Read(strings.NewReader(good+good+`{"node":"a","ki`), "a")
	if err != nil || !torn || len(events) != 2 {
		t.Fatalf("Read = %d events, torn %v, %v; want 2, true, nil", len(events), torn, err)
	}
	events, torn, err = Read(strings.NewReader(good+good), "a")
	if err != nil || torn || len(events) != 2 || events[1].Line != 2 {
		t.Fatalf("Read = %v, torn %v, %v", events, torn, err)
	}
	_, _, err = Read(strings.NewReader(good+`{"node":`+"\n"+good), "a")
	if err == nil || !strings.Contains(err.Error(), "a:2") {
		t.Fatalf("Read of a bad middle line: %v; want an error naming a:2", err)
	}
	// A complete but bad last line is not torn: it was written whole.
	_, _, err = Read(strings.NewReader(good+"{oops}\n"), "a")
	if err == nil {
		t.Fatal("Read of a bad complete last line succeeded")
	}
}

func TestReadDirReportsTornFiles(t *testing.T) {
	dir := t.TempDir()
	for i, body := range []string{`{"kind":"act","at":1}` + "\n", `{"kind":"act","at":2}` + "\n" + `{"kind`} {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("n%d.jsonl", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	events, torn, err := ReadDir(dir)
	if err != nil || len(events) != 2 || len(torn) != 1 || torn[0] != "n1" {
		t.Fatalf("ReadDir = %d events, torn %v, %v", len(events), torn, err)
	}
	if _, _, err := ReadDir(t.TempDir()); err == nil {
		t.Error("ReadDir of an empty dir succeeded")
	}
}
