package shim

import (
	"context"
	"os/exec"
	"testing"
)

// BenchmarkExec is one command through the agent: request, started,
// exit of /bin/true, as the daemon sees it.
func BenchmarkExec(b *testing.B) {
	for _, tc := range []struct {
		name    string
		seccomp bool
	}{{"plain", false}, {"seccomp", true}} {
		b.Run(tc.name, func(b *testing.B) {
			a := startAgent(b, agentOptions{seccomp: tc.seccomp})
			req := request("/bin/true")
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				p, err := Start(ctx, a.path, req)
				if err != nil {
					b.Fatal(err)
				}
				if exit, err := p.Wait(); err != nil || exit.Code != 0 {
					b.Fatalf("exit %+v, %v", exit, err)
				}
			}
		})
	}
}

// BenchmarkForkExec is the floor to compare with: the test process
// itself starting /bin/true.
func BenchmarkForkExec(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
