// Package guard runs a shell command that must not outlive a deadline,
// even if the process that started it is paused or killed.
//
// # Model
//
// A runner holds an etcd lease and runs commands ("units") under it. The
// lease's conservative local deadline (leases.Lease.HeldUntil) keeps
// moving forward while renewals succeed. A command must be dead before the
// last deadline the runner granted it has passed, whatever happens to the
// runner: a goroutine that kills the command on time does not help if the
// runner is SIGSTOPped, frozen with its VM, or SIGKILLed.
//
// So each command runs under a guard: a small process (this same binary,
// re-executed, calling Main) that holds the deadline and kills the
// command's whole process group when it passes. The runner keeps moving
// the deadline with Process.Extend. If the runner stops doing so, for any
// reason including a pause, the guard's own timer fires and the group is
// SIGKILLed, with no grace: past the deadline the lease may already be
// unsafe. If the runner dies, the guard learns it at once from its control
// pipe and kills the group too.
//
// Deadlines are clock.Boot instants (CLOCK_BOOTTIME, nanoseconds since
// boot). That clock is system-wide, so an instant computed in the runner
// means the same in the guard, and it counts system suspend, so a deadline
// that passed while the machine slept fires on resume. Deadlines cross the
// process boundary as raw integers and the guard never converts them to
// durations, which would shift them by the time the message took.
//
// # Processes
//
//	runner ──(exec, own process group)──▶ guard ──(exec, own process group)──▶ /bin/sh -c Command ──▶ ...
//
// The command runs as /bin/sh -c Command in a new process group, so one
// kill(-pgid) reaches the shell and everything it started. When the shell
// exits, for any reason, the guard SIGKILLs the group once more before
// reaping the shell (which keeps the group id from being reused): a unit
// ends when its shell does, and `sleep 100 & exit` leaves nothing behind.
// The guard is a child subreaper, so orphaned descendants are re-parented
// to it rather than to init: it reaps the group's zombies, so that "the
// group is gone" is true when it reports, and it also kills descendants
// that left the group (setsid, double fork), since they are its children by
// then. What escapes is only what the command gets others to start
// (systemd-run, a daemon, a container runtime): those processes are not its
// descendants, and containing them takes cgroups.
//
// The guard is in a process group of its own too. Job control aimed at
// the runner's group must not reach it: a terminal's Ctrl-Z, or
// `kill -STOP -<pgid>`, would stop the guard with the runner, and a stopped
// guard cannot kill at the deadline. Ctrl-C and terminal hang-up reach only
// the runner, which either handles them (and calls Stop) or dies of them
// (and the pipe tells the guard). The guard ignores SIGHUP for the same
// reason. It deliberately has no parent-death signal: it must outlive a
// dead runner long enough to kill the command. The command's shell does
// have one (SIGKILL when the guard dies), as a partial defence should the
// guard itself be SIGKILLed; Process.Wait then also kills the group from
// the runner's side.
//
// # Protocol
//
// The guard's stdin is the control pipe; its fd 3 (exec.Cmd.ExtraFiles) is
// the status pipe. Both carry newline-terminated lines.
//
// Control, runner to guard:
//
//	{"v":1,"command":...,"env":[...],"dir":...,"timeout_ns":...,"kill_grace_ns":...,"deadline":<ns>}
//	deadline <ns>
//	stop
//
// The first line is the spec as JSON, with the first deadline; the spec
// does not travel in the environment or arguments, which are size-limited,
// visible in ps and inherited. The command's environment is computed by the
// runner (os.Environ() plus Spec.Env), so Spec.GuardEnv, such as a variable
// that makes the binary call Main, never reaches the command. Each
// "deadline" line replaces the deadline, later or earlier; "stop" asks for a
// graceful stop. EOF, or a read error, means the runner is gone: the kernel
// closes a dead process's descriptors, and the write end is close-on-exec
// so no other process holds it. A line the guard cannot parse kills the
// command (reason "error"): a confused runner cannot be trusted with
// deadlines either.
//
// Status, guard to runner:
//
//	pgid <n>
//	result <exit code> <reason> [<Go-quoted error>]
//
// "pgid" follows the command's start; Start returns after it. "result" is
// the last line, written once the command's group is gone, just before the
// guard exits. A result without a pgid before it means the command was not
// started; Start then returns an error. If the status pipe ends without a
// result, the guard died (Process.Wait reports ReasonError).
//
// # Ending a command
//
//	cause                              signals to the group               Reason
//	deadline passed                    SIGKILL at once                    deadline
//	control pipe EOF (runner died)     SIGKILL at once                    orphaned
//	"stop", SIGTERM or SIGINT to guard SIGTERM, SIGKILL after KillGrace   stopped
//	Spec.Timeout elapsed               SIGTERM, SIGKILL after KillGrace   timeout
//	shell exited by itself             SIGKILL (for leftovers)            exited
//
// The first cause decides the Reason; a later, harsher one still acts (a
// deadline passing during a stop's grace kills at once).
//
// # Using it
//
// The binary must dispatch to Main when re-executed with Spec.Args and
// Spec.GuardEnv, before doing anything else:
//
//	func main() {
//		if len(os.Args) > 1 && os.Args[1] == "guard" {
//			os.Exit(guard.Main(os.Args[2:]))
//		}
//		...
//	}
//
// and a runner does:
//
//	p, err := guard.Start(guard.Spec{Command: cmd, Args: []string{"guard"}}, lease.HeldUntil())
//	...
//	for each tick until p.Wait returns: p.Extend(lease.HeldUntil())
//
// The package works on Linux only; elsewhere Start fails.
package guard
