package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/cgroup"
)

const (
	// benchUser owns every session the bench creates.
	benchUser = "bench"
	// clients is how many execs run at once in the throughput rows, each
	// in a session (and a runc container) of its own.
	clients = 8
	// throughputRounds are the rounds of each throughput row; each
	// round of sandboxd is followed by one of runc.
	throughputRounds = 3
)

type options struct {
	sandboxd, sandboxctl, runc, bwrap string
	dir                               string
	// only, when set, lists the groups of rows to measure.
	only string
	// quotaMode, when set, is the daemon's quota.mode (to compare the
	// disk limits' mechanisms with none).
	quotaMode      string
	runs, idle     int
	throughputTime time.Duration
}

// row is one line of the table.
type row struct {
	what         string
	ours, peer   string
	ratio        string
	target, note string
}

// bench is one run: the daemon, the peer, and the rows measured so far.
type bench struct {
	o      options
	d      *daemon
	r      *runc
	cg     *cgroup.Manager
	rows   []row
	notes  []string
	status io.Writer
}

// run measures everything and writes the table to out; progress goes to
// stderr.
func run(ctx context.Context, o options, out io.Writer) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Parents of this checkout's own: a rerun after a killed run finds
	// (and removes) what that one left, and another checkout's bench
	// never meets them.
	h := fnv.New32a()
	_, _ = h.Write([]byte(dir))
	parent := fmt.Sprintf("/sandboxd-bench-%08x", h.Sum32())

	b := &bench{o: o, status: os.Stderr}
	if b.cg, err = cgroup.New(parent); err != nil {
		return err
	}
	machine := describeHost(b.cg.Mode())
	loadBefore := loadAverage()
	b.progress("starting sandboxd (the first start builds the base venv)")
	if b.d, err = startDaemon(ctx, o.sandboxd, dir, parent, o.quotaMode); err != nil {
		return err
	}
	defer func() {
		// Sessions were deleted; the daemon destroys its ready sandboxes
		// as it stops, and the parent is the bench's own.
		b.d.stop()
		if err := b.cg.RemoveParent(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: remove cgroups:", err)
		}
	}()
	if err := b.d.deleteAll(ctx); err != nil {
		return fmt.Errorf("delete a previous run's sessions: %w", err)
	}
	if b.r, err = newRunc(o.runc, dir, parent+"-runc"); err != nil {
		return fmt.Errorf("runc: %w", err)
	}
	defer func() {
		if err := b.r.close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: clean up runc:", err)
		}
	}()
	defer func() {
		if err := b.d.deleteAll(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "bench: delete sessions:", err)
		}
	}()

	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"exec", b.warmExec}, {"cli", b.cliExec}, {"bwrap", b.bwrapRun}, {"interactive", b.interactive},
		{"throughput", b.throughputs}, {"idle", b.idleSessions},
	}
	for _, step := range steps {
		if o.only != "" && !slices.Contains(strings.Split(o.only, ","), step.name) {
			continue
		}
		if err := step.run(ctx); err != nil {
			return err
		}
	}
	b.print(out, machine, loadBefore, loadAverage())
	return nil
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.status, "bench: "+format+"\n", args...)
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	b.progress("%s: %s vs %s (%s)", r.what, r.ours, r.peer, r.ratio)
}

// pairRow adds the medians of two alternated sample sets as a row.
func (b *bench) pairRow(what string, ours, peer []time.Duration, target string) {
	o, p := median(ours), median(peer)
	b.add(row{what: what, ours: ms(o), peer: ms(p), ratio: ratio(float64(o), float64(p)), target: target})
}

// warmExec: `true` through the API in a warm session vs `runc exec` in a
// running container, at 0.5 and at 2 CPUs.
func (b *bench) warmExec(ctx context.Context) error {
	for _, cpus := range []float64{0.5, 2} {
		b.progress("warm exec at %g CPU", cpus)
		s, id, err := b.pair(ctx, fmt.Sprintf("exec-%g", cpus), cpus)
		if err != nil {
			return err
		}
		ours, peer, err := alternate(ctx, b.o.runs, func() error { return b.d.execTrue(ctx, s.ID) }, func() error { return b.r.execTrue(id) })
		if err != nil {
			return fmt.Errorf("warm exec: %w", err)
		}
		target := ""
		if cpus == 0.5 {
			target = "≤ 0.1"
		}
		b.pairRow(fmt.Sprintf("exec `true` through the API (Go client) vs `runc exec`, %g CPU", cpus), ours, peer, target)
	}
	return nil
}

// pair makes a session and a runc container with cpus CPUs, both kept
// until the end of the run.
func (b *bench) pair(ctx context.Context, name string, cpus float64) (api.Session, string, error) {
	s, err := b.d.session(ctx, cpus)
	if err != nil {
		return api.Session{}, "", fmt.Errorf("create session: %w", err)
	}
	bundle, err := b.r.bundle(name, cpus, "sleep", "infinity")
	if err != nil {
		return api.Session{}, "", err
	}
	if err := b.r.start(name, bundle); err != nil {
		return api.Session{}, "", err
	}
	return s, name, nil
}

// cliExec: the whole client process, `sandboxctl exec` vs `runc exec`.
func (b *bench) cliExec(ctx context.Context) error {
	b.progress("exec through the CLI")
	s, id, err := b.pair(ctx, "cli", 0.5)
	if err != nil {
		return err
	}
	ctl := func() error {
		cmd := exec.CommandContext(ctx, b.o.sandboxctl, "--socket", b.d.socket, "exec", s.ID, "--", "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("sandboxctl exec: %w: %s", err, out)
		}
		return nil
	}
	ours, peer, err := alternate(ctx, b.o.runs, ctl, func() error { return b.r.execTrue(id) })
	if err != nil {
		return fmt.Errorf("CLI exec: %w", err)
	}
	b.pairRow("exec `true`, whole client process: `sandboxctl exec` vs `runc exec`, 0.5 CPU", ours, peer, "")
	return nil
}

// bwrapRun: a whole bubblewrap run of `true`, with every namespace new,
// vs an exec through the API.
func (b *bench) bwrapRun(ctx context.Context) error {
	bin, err := exec.LookPath(b.o.bwrap)
	if err != nil {
		b.notes = append(b.notes, "bubblewrap is not installed (apt-get install bubblewrap): its row is left out.")
		return nil
	}
	b.progress("bwrap")
	s, err := b.d.session(ctx, 0.5)
	if err != nil {
		return err
	}
	args := []string{"--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
		"--uid", fmt.Sprint(sandboxUID), "--gid", fmt.Sprint(sandboxUID),
		"--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"}
	for _, link := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(link)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(link)
			if err != nil {
				return err
			}
			args = append(args, "--symlink", target, link)
		case fi.IsDir():
			args = append(args, "--ro-bind", link, link)
		}
	}
	args = append(args, "--", "true")
	bw := func() error {
		if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("bwrap: %w: %s", err, out)
		}
		return nil
	}
	ours, peer, err := alternate(ctx, b.o.runs, func() error { return b.d.execTrue(ctx, s.ID) }, bw)
	if err != nil {
		return fmt.Errorf("bwrap: %w", err)
	}
	b.pairRow("exec `true` through the API vs a whole `bwrap --unshare-all` run of it", ours, peer, "")
	return nil
}

// interactive: create + first exec result vs `runc run` of `true`, then
// delete vs `runc delete --force` of a running container.
func (b *bench) interactive(ctx context.Context) error {
	b.progress("time to interactive and delete")
	runBundle, err := b.r.bundle("run", 0.5, "true")
	if err != nil {
		return err
	}
	liveBundle, err := b.r.bundle("live", 0.5, "sleep", "infinity")
	if err != nil {
		return err
	}
	var created []string
	n := 0
	create := func() error {
		s, err := b.d.session(ctx, 0.5)
		if err != nil {
			return err
		}
		created = append(created, s.ID)
		return b.d.execTrue(ctx, s.ID)
	}
	remove := func() error {
		id := created[0]
		created = created[1:]
		_, err := b.d.client.DeleteSession(ctx, id, false)
		return err
	}
	runOnce := func() error {
		n++
		return b.r.runOnce(fmt.Sprintf("run-%d", n), runBundle)
	}
	var live []string
	runcDelete := func() error {
		id := live[0]
		live = live[1:]
		return b.r.remove(id)
	}
	startLive := func() error {
		n++
		id := fmt.Sprintf("live-%d", n)
		live = append(live, id)
		return b.r.start(id, liveBundle)
	}
	var ti, tr, di, dr []time.Duration
	for i := range b.o.runs + warmups {
		d1, err := timed(create)
		if err != nil {
			return fmt.Errorf("create and exec: %w", err)
		}
		d2, err := timed(runOnce)
		if err != nil {
			return err
		}
		if err := startLive(); err != nil {
			return err
		}
		var d3, d4 time.Duration
		if i%2 == 0 {
			d3, err = timed(remove)
			if err == nil {
				d4, err = timed(runcDelete)
			}
		} else {
			d4, err = timed(runcDelete)
			if err == nil {
				d3, err = timed(remove)
			}
		}
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		if i >= warmups {
			ti, tr, di, dr = append(ti, d1), append(tr, d2), append(di, d3), append(dr, d4)
		}
	}
	b.pairRow("time to interactive: create + first exec result (API) vs `runc run` of `true`, 0.5 CPU", ti, tr, "≤ 0.5")
	o, p := median(di), median(dr)
	b.add(row{what: "delete a session (API) vs `runc delete --force` of a running container", ours: ms(o), peer: ms(p),
		ratio: ratio(float64(o), float64(p)), target: "≤ 5 ms"})
	return nil
}

// throughputs: execs per second with 8 clients over 8 sessions vs 8 over
// 8 runc containers, at 0.5 and 2 CPUs, and the CPU each exec costs.
func (b *bench) throughputs(ctx context.Context) error {
	var (
		ourCalls, peerCalls int
		daemonCPU, boxCPU   time.Duration
		peerCPU             time.Duration
	)
	for _, cpus := range []float64{0.5, 2} {
		b.progress("throughput at %g CPU", cpus)
		sessions := make([]api.Session, clients)
		containers := make([]string, clients)
		for i := range clients {
			var err error
			if sessions[i], containers[i], err = b.pair(ctx, fmt.Sprintf("tp-%g-%d", cpus, i), cpus); err != nil {
				return err
			}
		}
		var ours, peer []float64
		for range throughputRounds {
			d0, err := processCPU(b.d.pid())
			if err != nil {
				return err
			}
			s0, err := b.sessionsCPU(sessions)
			if err != nil {
				return err
			}
			rate, calls, err := throughput(ctx, clients, b.o.throughputTime, func(i int) error { return b.d.execTrue(ctx, sessions[i].ID) })
			if err != nil {
				return fmt.Errorf("throughput: %w", err)
			}
			d1, err := processCPU(b.d.pid())
			if err != nil {
				return err
			}
			s1, err := b.sessionsCPU(sessions)
			if err != nil {
				return err
			}
			ours, ourCalls, daemonCPU, boxCPU = append(ours, rate), ourCalls+calls, daemonCPU+d1-d0, boxCPU+s1-s0

			c0 := childrenCPU()
			rate, calls, err = throughput(ctx, clients, b.o.throughputTime, func(i int) error { return b.r.execTrue(containers[i]) })
			if err != nil {
				return fmt.Errorf("runc throughput: %w", err)
			}
			peer, peerCalls, peerCPU = append(peer, rate), peerCalls+calls, peerCPU+childrenCPU()-c0
		}
		o, p := median(ours), median(peer)
		b.add(row{what: fmt.Sprintf("exec throughput, %d concurrent clients over %d sessions vs over %d runc containers, %g CPU", clients, clients, clients, cpus),
			ours: fmt.Sprintf("%.0f exec/s", o), peer: fmt.Sprintf("%.0f exec/s", p), ratio: ratio(o, p), target: "≥ 300 exec/s"})
		for _, s := range sessions {
			if _, err := b.d.client.DeleteSession(ctx, s.ID, false); err != nil {
				return err
			}
		}
	}
	per := func(d time.Duration, n int) time.Duration { return d / time.Duration(max(n, 1)) }
	b.add(row{what: fmt.Sprintf("CPU per exec during the throughput rows: the daemon process (%d execs) vs a whole `runc exec` (runc, its init and `true`; %d execs)", ourCalls, peerCalls),
		ours: ms(per(daemonCPU, ourCalls)), peer: ms(per(peerCPU, peerCalls)), ratio: ratio(float64(per(daemonCPU, ourCalls)), float64(per(peerCPU, peerCalls))), target: "reported"})
	b.add(row{what: "CPU per exec: the daemon plus the sandbox side (agent fork, supervisor, `true`: the sessions' cgroups) vs a whole `runc exec`",
		ours: ms(per(daemonCPU+boxCPU, ourCalls)), peer: ms(per(peerCPU, peerCalls)), ratio: ratio(float64(per(daemonCPU+boxCPU, ourCalls)), float64(per(peerCPU, peerCalls)))})
	return nil
}

// sessionsCPU is the CPU time the sessions' cgroups have used.
func (b *bench) sessionsCPU(sessions []api.Session) (time.Duration, error) {
	var total time.Duration
	for _, s := range sessions {
		st, err := b.cg.SessionStats(b.cg.SessionPath(s.UserID, s.ID))
		if err != nil {
			return 0, err
		}
		total += st.CPU
	}
	return total, nil
}

// idleSessions: the memory of many idle sessions and of the daemon, and
// create and delete one after the other through the API.
func (b *bench) idleSessions(ctx context.Context) error {
	b.progress("%d idle sessions", b.o.idle)
	var creates, deletes []time.Duration
	var ids []string
	for range b.o.idle {
		var s api.Session
		d, err := timed(func() error {
			var err error
			s, err = b.d.session(ctx, 0.5)
			return err
		})
		if err != nil {
			return fmt.Errorf("idle sessions: %w", err)
		}
		creates, ids = append(creates, d), append(ids, s.ID)
	}
	var total uint64
	for _, id := range ids {
		st, err := b.cg.SessionStats(b.cg.SessionPath(benchUser, id))
		if err != nil {
			return err
		}
		total += st.MemoryBytes
	}
	daemonRSS, err := rss(b.d.pid())
	if err != nil {
		return err
	}
	for _, id := range ids {
		d, err := timed(func() error { _, err := b.d.client.DeleteSession(ctx, id, false); return err })
		if err != nil {
			return err
		}
		deletes = append(deletes, d)
	}
	b.add(row{what: fmt.Sprintf("%d idle sessions: memory of each (its cgroup's usage) / the daemon's RSS", b.o.idle),
		ours: fmt.Sprintf("%s / %s", mib(float64(total)/float64(len(ids))), mib(float64(daemonRSS))), peer: "–", ratio: "–",
		target: "no regression (0.86 / 76 MiB at 1,000)"})
	b.add(row{what: fmt.Sprintf("create / delete through the API, %d sessions one after the other", b.o.idle),
		ours: ms(median(creates)) + " / " + ms(median(deletes)), peer: "–", ratio: "–"})
	return nil
}

func (b *bench) print(out io.Writer, machine host, loadBefore, loadAfter string) {
	fmt.Fprintf(out, "\nMachine: %s. Load average %s before, %s after.\n", machine, loadBefore, loadAfter)
	fmt.Fprintf(out, "Medians of %d runs (throughput: of %d rounds of %s), sandboxd and peer alternating.\n\n", b.o.runs, throughputRounds, b.o.throughputTime)
	fmt.Fprintln(out, "| what | sandboxd | peer, same run | ratio | target |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	for _, r := range b.rows {
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", r.what, r.ours, r.peer, r.ratio, r.target)
	}
	for _, n := range b.notes {
		fmt.Fprintln(out, "\n"+n)
	}
}
