package shim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkExec is one command through the agent as the daemon sees it:
// connect, request, started, exit of /bin/true.
func BenchmarkExec(b *testing.B) {
	for _, tc := range []struct {
		name    string
		seccomp bool
	}{{"plain", false}, {"seccomp", true}} {
		b.Run(tc.name, func(b *testing.B) {
			a := startAgent(b, agentOptions{seccomp: tc.seccomp})
			req := request("/bin/true")
			sandbox, client := a.cpuTime(b), selfCPUTime(b)
			for b.Loop() {
				p, err := Start(context.Background(), a.path, req)
				if err != nil {
					b.Fatal(err)
				}
				if exit, err := p.Wait(); err != nil || exit.Code != 0 {
					b.Fatalf("exit %+v, %v", exit, err)
				}
			}
			// CPU time does not grow with the machine's load, as the
			// wall time does on shared cores.
			perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
			b.ReportMetric(perOp(a.cpuTime(b)-sandbox), "sandbox-cpu-µs/op")
			b.ReportMetric(perOp(selfCPUTime(b)-client), "client-cpu-µs/op")
		})
	}
}

// BenchmarkSupervisor is the agent's own part: connect, request, and a
// supervisor forked, set up (seccomp layer included) and waiting, without
// a command.
func BenchmarkSupervisor(b *testing.B) {
	a := startAgent(b, agentOptions{seccomp: true})
	req := request("/bin/true")
	req.Hold = true
	for b.Loop() {
		p, err := Start(context.Background(), a.path, req)
		if err != nil {
			b.Fatal(err)
		}
		_ = p.Close()
	}
}

// BenchmarkForkExec is the floor to compare with: the benchmark itself
// starting /bin/true.
func BenchmarkForkExec(b *testing.B) {
	children, self := childrenCPUTime(b), selfCPUTime(b)
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
	perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(perOp(childrenCPUTime(b)-children), "child-cpu-µs/op")
	b.ReportMetric(perOp(selfCPUTime(b)-self), "client-cpu-µs/op")
}

// cpuTime is the CPU time of the agent and everything it reaped (the
// supervisors and, through them, the commands).
func (a *testAgent) cpuTime(b *testing.B) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// utime, stime, cutime, cstime: fields 14-17, after the command name.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	var ticks int64
	for _, f := range fields[11:15] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func selfCPUTime(b *testing.B) time.Duration { return rusage(b, unix.RUSAGE_SELF) }

func childrenCPUTime(b *testing.B) time.Duration { return rusage(b, unix.RUSAGE_CHILDREN) }

func rusage(b *testing.B, who int) time.Duration {
	b.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
