package evtest

import "testing"

func TestNextWaitsForASecondOccurrence(t *testing.T) {
	l := New[string]()
	is := func(want string) func(string) bool { return func(s string) bool { return s == want } }
	l.Add("started")
	l.Add("failed")
	if _, i := l.Next(t, "failed", is("failed")); i != 1 {
		t.Fatalf("Next(failed) = #%d; want #1", i)
	}
	done := make(chan int)
	go func() { _, i := l.Next(t, "started", is("started")); done <- i }()
	l.Add("started")
	if i := <-done; i != 2 {
		t.Errorf("Next(started) after the failure = #%d; want the restart #2, not the first start", i)
	}
	if _, i := l.First(t, "started", is("started")); i != 0 {
		t.Errorf("First(started) = #%d; want #0", i)
	}
	if n := l.Count(is("started")); n != 2 {
		t.Errorf("Count = %d; want 2", n)
	}
}
