// Command bench measures sandboxd side by side with its peers in one run —
// runc (built from the version go.mod pins) and bubblewrap where it is
// installed — and prints the table of ratios the README shows, with the
// machine it came from. `make bench` builds everything and runs it as root.
//
// It is a program rather than a Go benchmark or a test: it times the
// binaries as they ship (bin/sandboxd, bin/sandboxctl, started as their own
// processes, as the chat backend and a shell see them) against other
// programs, and its figures are a report, not a verdict a test could pass
// or fail on a shared machine. The in-process benchmarks stay beside the
// code they time (sandbox, sandbox/shim, cgroup: `make bench-go`).
//
// Every figure is the median of -runs samples; the sandboxd and peer
// samples of a row alternate, each going first in turn, so that the
// machine's noise falls on both. Everything it makes — a state directory,
// runc containers, cgroups under parents named for its pid — is its own and
// removed at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.sandboxd, "sandboxd", "bin/sandboxd", "the sandboxd binary")
	flag.StringVar(&o.sandboxctl, "sandboxctl", "bin/sandboxctl", "the sandboxctl binary")
	flag.StringVar(&o.runc, "runc", "", "the runc binary (packaging/bench/build-runc.sh)")
	flag.StringVar(&o.bwrap, "bwrap", "bwrap", "the bubblewrap binary; its row is skipped when it is not found")
	flag.IntVar(&o.runs, "runs", 20, "samples per figure (the median is shown)")
	flag.DurationVar(&o.throughputTime, "throughput-time", 3*time.Second, "length of one throughput round")
	flag.StringVar(&o.dir, "dir", ".cache/bench", "the bench's state: the daemon's state directory, runc's, the bundles")
	flag.IntVar(&o.idle, "idle", 100, "idle sessions for the memory figures")
	flag.StringVar(&o.quotaMode, "quota-mode", "", "the daemon's quota.mode (auto, project, loop, none; use a -dir of its own): unset, its default")
	flag.StringVar(&o.only, "only", "", "measure only these groups of rows: exec,cli,bwrap,interactive,throughput,idle")
	flag.Parse()
	if o.runc == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: bench --runc RUNC [flags]")
		flag.PrintDefaults()
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (namespaces, cgroups, mounts)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
