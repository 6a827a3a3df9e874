package tasks_test

import (
	"fmt"
	"time"

	"github.com/leasehold/leasehold/services/tasks"
)

func Example() {
	valid, problems, err := tasks.Parse([]byte(`
tasks:
  - name: report
    schedule: "@every 10s"
    command: echo hi
  - name: backup
    schedule: "*/5 * * * *"
    command: backup.sh
    missed: skip
  - name: Broken
    schedule: "@every 10s"
    comand: echo oops
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range problems {
		fmt.Println("problem:", p)
	}

	// The leader last scheduled 15:00:00 and was down until 15:20:07.
	last := time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC)
	now := time.Date(2024, 1, 2, 15, 20, 7, 0, time.UTC)
	for _, t := range valid {
		fmt.Printf("%s (missed: %s):", t.Name, t.Missed)
		for _, slot := range t.Due(last, now, 10*time.Second) {
			fmt.Print(" ", tasks.SlotKey(slot))
		}
		fmt.Println()
	}
	// Output:
	// problem: task "Broken": name "Broken": character 'B' at offset 0 is not allowed: use only lowercase letters a-z, digits 0-9 and '-', e.g. "broken"
	// task "Broken": command: missing or empty: add the shell command to run (with sh -c), e.g. command: "echo hi"
	// task "Broken": comand: unknown field (did you mean "command"?): fields are name, schedule, command, timeout, retries, retry_backoff, missed
	// report (missed: latest): 20240102T151950Z 20240102T152000Z
	// backup (missed: skip): 20240102T152000Z
}
