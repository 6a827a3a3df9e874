package leasehold_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/leases"
)

// Child processes are this test binary re-executed with childEnv naming a
// role; TestMain runs the role instead of the tests.
const (
	childEnv     = "LEASEHOLD_TEST_CHILD"
	endpointEnv  = "LEASEHOLD_TEST_ENDPOINT"
	fencedKey    = "/fence/data"
	fencePrefix  = "/fence/leader"
	roleFenced   = "fenced-writer"
	roleStubborn = "stubborn"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role, os.Getenv(endpointEnv)))
	}
	goleak.VerifyTestMain(m)
}

// runChild runs a tree in a child process, reporting on stdout, until
// SIGTERM.
func runChild(role, endpoint string) int {
	c, err := etcdtest.NewClient(endpoint)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var tree *leasehold.Node
	opts := leasehold.Options{Logger: quiet}
	switch role {
	case roleFenced:
		tree = leasehold.Election("leader", fencePrefix, leasehold.TTL(2*time.Second), leasehold.Identity("child"),
			leasehold.Func("writer", fencedWriter))
		// Resumed after its lease expired, the child is past HeldUntil at
		// once; the default policy would exit before the writer's late
		// write. Abandoning shows that fencing alone rejects that write.
		opts.Overrun = leasehold.AbandonOnOverrun
	case roleStubborn:
		tree = leasehold.Lease("l", leasehold.TTL(2*time.Second), leasehold.Func("stubborn", func(ctx context.Context) error {
			fmt.Printf("LEASE %d\n", leasehold.LeaseOf(ctx).ID())
			select {} // ignores ctx: the default overrun policy must exit the process
		}))
	default:
		fmt.Println("ERROR unknown role", role)
		return 1
	}
	rt, err := leasehold.New(c, tree, opts)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	if err := rt.Run(ctx); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	return 0
}

// fencedWriter writes the leader's token through fenced transactions until
// its term ends, then tries once more, as a deposed leader resuming from a
// pause would.
func fencedWriter(ctx context.Context) error {
	term := leasehold.TermOf(ctx)
	fmt.Printf("ELECTED %d\n", term.Token())
	write := func() {
		resp, err := term.Txn(context.Background()).Then(clientv3.OpPut(fencedKey, "child")).Commit()
		switch {
		case err == nil:
			fmt.Printf("COMMIT %d\n", resp.Header.Revision)
		case errors.Is(err, leases.ErrFenced):
			fmt.Printf("FENCED %d\n", term.Token())
		default:
			fmt.Printf("ERROR %v\n", err)
		}
	}
	for ctx.Err() == nil {
		write()
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	write()
	return nil
}

// child is a running child process and the lines it printed.
type child struct {
	cmd   *exec.Cmd
	lines chan string
	exit  chan error
}

func startChild(t *testing.T, role, endpoint string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, endpointEnv+"="+endpoint)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, lines: make(chan string, 1024), exit: make(chan error, 1)}
	go func() {
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			ch.lines <- scanner.Text()
		}
		close(ch.lines)
		ch.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ch.exit:
		case <-time.After(waitLimit):
			_ = cmd.Process.Kill()
			<-ch.exit
		}
	})
	return ch
}

// await returns the first line with prefix, failing on ERROR lines.
func (c *child) await(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %s", prefix)
			}
			if strings.HasPrefix(line, "ERROR") {
				t.Fatalf("child: %s", line)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-deadline:
			t.Fatalf("child printed no %s", prefix)
		}
	}
}

func field(t *testing.T, line string) int64 {
	t.Helper()
	f := strings.Fields(line)
	n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return n
}

// A leader paused with SIGSTOP until a successor leads has its fenced
// write rejected when it resumes; the successor's commits.
func TestFencingUnderRealPause(t *testing.T) {
	srv := etcdtest.Start(t)
	kid := startChild(t, roleFenced, srv.Endpoint)
	childToken := field(t, kid.await(t, "ELECTED"))
	kid.await(t, "COMMIT")

	committed := make(chan int64, 1)
	successor := leasehold.Election("leader", fencePrefix, short, leasehold.Identity("successor"),
		leasehold.Func("writer", func(ctx context.Context) error {
			resp, err := leasehold.TermOf(ctx).Txn(ctx).Then(clientv3.OpPut(fencedKey, "successor")).Commit()
			if err != nil {
				return err
			}
			committed <- resp.Header.Revision
			<-ctx.Done()
			return nil
		}))
	r := start(t, srv.Client(t), successor, leasehold.Options{})
	r.rec.wait(t, "successor campaigning", is(leasehold.EventCampaigning, "leader"))

	if err := kid.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	elected, _ := r.rec.wait(t, "successor elected", is(leasehold.EventElected, "leader"))
	successorRev := recv(t, "successor's commit", committed)
	if elected.Token <= childToken {
		t.Errorf("successor token %d not above the paused leader's %d", elected.Token, childToken)
	}
	if err := kid.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Everything the child printed before FENCED: no commit may land at or
	// after the successor's election.
	for {
		line := kid.await(t, "")
		if strings.HasPrefix(line, "COMMIT") && field(t, line) >= elected.Token {
			t.Fatalf("the deposed leader committed at revision %d, after the successor was elected at %d", field(t, line), elected.Token)
		}
		if strings.HasPrefix(line, "FENCED") {
			break
		}
	}
	resp, err := srv.Client(t).Get(context.Background(), fencedKey)
	if err != nil {
		t.Fatal(err)
	}
	if kv := resp.Kvs[0]; string(kv.Value) != "successor" || kv.ModRevision != successorRev {
		t.Errorf("%s = %q at revision %d; want the successor's write at %d", fencedKey, kv.Value, kv.ModRevision, successorRev)
	}
}

// The default overrun policy exits the process with ExitCodeOverrun.
func TestDefaultOverrunPolicyExits(t *testing.T) {
	srv := etcdtest.Start(t)
	kid := startChild(t, roleStubborn, srv.Endpoint)
	id := field(t, kid.await(t, "LEASE"))
	if _, err := srv.Client(t).Revoke(context.Background(), clientv3.LeaseID(id)); err != nil {
		t.Fatal(err)
	}
	err := recv(t, "child exit", kid.exit)
	kid.exit <- err // for the cleanup
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != leasehold.ExitCodeOverrun {
		t.Fatalf("child exited with %v; want status %d", err, leasehold.ExitCodeOverrun)
	}
}
