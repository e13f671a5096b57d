package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

// stats is sandboxctl stats: one session's figures.
func stats(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("stats", std, "Usage: sandboxctl stats [--json] ID\n\n"+
		"Prints what session ID uses now and has done: CPU time used and held back by\nits limit, memory now and at peak, processes, OOM kills, commands run,\nbackground processes running, last activity.\n\nFlags:\n")
	asJSON := fs.Bool("json", false, "print the statistics as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("stats takes one session ID")
	}
	st, err := c.Stats(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(std.out, st)
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "session\t%s (user %s), %s\n", st.ID, st.UserID, st.Status)
	fmt.Fprintf(tw, "cpu\t%s used, %s held back by the limit of %g CPU\n", millis(st.CPUMS), millis(st.CPUThrottledMS), st.Limits.CPUs)
	fmt.Fprintf(tw, "memory\t%s now, %s at peak, of %s\n", bytesOf(st.MemoryBytes), bytesOf(st.MemoryPeakBytes), bytesOf(uint64(st.Limits.MemoryMB)<<20))
	fmt.Fprintf(tw, "pids\t%d of %d\n", st.Pids, st.PidsLimit)
	fmt.Fprintf(tw, "oom kills\t%d\n", st.OOMKills)
	fmt.Fprintf(tw, "commands\t%d run, %d background running\n", st.Execs, st.Processes)
	fmt.Fprintf(tw, "last activity\t%s\n", activity(st.LastActivity, time.Now()))
	if d := st.Disk; d != nil {
		fmt.Fprintf(tw, "disk\t%s of %s, %d files of %d\n", bytesOf(uint64(d.Bytes)), bytesOf(uint64(d.LimitBytes)), d.Files, d.LimitFiles)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// top is sandboxctl top: a table of the sessions, refreshed.
func top(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("top", std, "Usage: sandboxctl top [--user U] [--interval 2s] [--once]\n\n"+
		"Shows every session (or one user's) with what it uses, busiest first, and\nrefreshes the table until interrupted. CPU% is over the last interval.\n\nFlags:\n")
	user := fs.String("user", "", "only this user's sessions")
	interval := fs.Duration("interval", 2*time.Second, "time between refreshes")
	once := fs.Bool("once", false, "print the table once, without CPU%, and exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("top takes no arguments")
	}
	if *interval <= 0 {
		return usagef("top: --interval must be positive")
	}
	var prev frame
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		cur, err := readFrame(ctx, c, *user)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !*once {
			fmt.Fprint(std.out, "\x1b[H\x1b[2J") // home, clear screen
		}
		if err := cur.print(std.out, prev); err != nil {
			return err
		}
		if *once {
			return nil
		}
		prev = cur
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// frame is the sessions' statistics at one moment.
type frame struct {
	at    time.Time
	stats []api.SessionStats
}

// readFrame lists the sessions and reads each one's statistics; one
// deleted in between is left out.
func readFrame(ctx context.Context, c *client.Client, user string) (frame, error) {
	sessions, err := c.ListSessions(ctx, user)
	if err != nil {
		return frame{}, err
	}
	f := frame{at: time.Now()}
	for _, s := range sessions {
		st, err := c.Stats(ctx, s.ID)
		if errors.Is(err, api.ErrNotFound) {
			continue
		}
		if err != nil {
			return frame{}, err
		}
		f.stats = append(f.stats, st)
	}
	return f, nil
}

// print writes the table, with each session's CPU% since prev when prev
// has the session.
func (f frame) print(w io.Writer, prev frame) error {
	wall := f.at.Sub(prev.at).Milliseconds()
	before := map[string]int64{}
	for _, st := range prev.stats {
		before[st.ID] = st.CPUMS
	}
	type row struct {
		st  api.SessionStats
		pct float64 // -1: unknown
	}
	rows := make([]row, 0, len(f.stats))
	for _, st := range f.stats {
		r := row{st: st, pct: -1}
		if cpu, ok := before[st.ID]; ok && wall > 0 {
			r.pct = 100 * float64(st.CPUMS-cpu) / float64(wall)
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if a.pct != b.pct {
			return cmpDesc(a.pct, b.pct)
		}
		if a.st.CPUMS != b.st.CPUMS {
			return cmpDesc(a.st.CPUMS, b.st.CPUMS)
		}
		return strings.Compare(a.st.ID, b.st.ID)
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tUSER\tSTATUS\tCPU%\tCPU\tMEM\tMEM%\tPIDS\tEXECS\tPROCS\tOOM\tIDLE")
	for _, r := range rows {
		st := r.st
		pct := "-"
		if r.pct >= 0 {
			pct = strconv.FormatFloat(r.pct, 'f', 1, 64)
		}
		memPct := "-"
		if st.Limits.MemoryMB > 0 {
			memPct = strconv.FormatFloat(100*float64(st.MemoryBytes)/float64(uint64(st.Limits.MemoryMB)<<20), 'f', 1, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%s\n",
			st.ID, st.UserID, st.Status, pct, millis(st.CPUMS), bytesOf(st.MemoryBytes), memPct,
			st.Pids, st.PidsLimit, st.Execs, st.Processes, st.OOMKills, idle(st.LastActivity, f.at))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func cmpDesc[T int64 | float64](a, b T) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// eventsCommand is sandboxctl events: the daemon's events as they happen.
func eventsCommand(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("events", std, "Usage: sandboxctl events [--user U] [--session S] [--json]\n\n"+
		"Prints the daemon's events as they happen (sessions created and deleted,\ncommands that ended, timed out or were OOM-killed, quotas refusing, …) until\ninterrupted. A client too slow to keep up is dropped by the daemon: then\nsandboxctl says so and exits 1.\n\nFlags:\n")
	user := fs.String("user", "", "only this user's events")
	session := fs.String("session", "", "only this session's events")
	asJSON := fs.Bool("json", false, "print each event as a line of JSON, as the daemon sends it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("events takes no arguments")
	}
	err := c.Events(ctx, *user, *session, nil, func(ev api.Event) error {
		if *asJSON {
			return printJSONLine(std.out, ev)
		}
		if _, err := fmt.Fprintln(std.out, describeEvent(ev)); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil // interrupted: the usual way to stop
	}
	return err
}

// describeEvent is an event on one line: time, type, user/session, then
// what the type sets.
func describeEvent(ev api.Event) string {
	parts := []string{ev.Time.Local().Format("2006-01-02 15:04:05.000"), ev.Type}
	if ev.UserID != "" || ev.SessionID != "" {
		parts = append(parts, ev.UserID+"/"+ev.SessionID)
	}
	if ev.ProcessID != "" {
		parts = append(parts, "process="+ev.ProcessID)
	}
	if ev.Command != "" {
		parts = append(parts, "command="+strconv.Quote(ev.Command))
	}
	if o := ev.Outcome; o != nil {
		parts = append(parts, fmt.Sprintf("exit=%d", o.ExitCode))
		if o.Signal != "" {
			parts = append(parts, "signal="+o.Signal)
		}
		if o.TimedOut {
			parts = append(parts, "timed_out")
		}
		if o.OOMKilled {
			parts = append(parts, "oom_killed")
		}
		parts = append(parts, "duration="+millis(o.DurationMS), "cpu="+millis(o.CPUMS), "peak="+bytesOf(o.PeakMemoryBytes))
	}
	if ev.Quota != "" {
		parts = append(parts, "quota="+ev.Quota)
	}
	if ev.Package != "" {
		parts = append(parts, "package="+ev.Package)
	}
	if ev.Reason != "" {
		parts = append(parts, "reason="+strconv.Quote(ev.Reason))
	}
	return strings.Join(parts, " ")
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// millis writes milliseconds as seconds, e.g. "1.52s".
func millis(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', 2, 64) + "s"
}

// bytesOf writes a size in binary units, e.g. "40.0M".
func bytesOf(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + "B"
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[i:i+1]
}

// activity writes when something last happened and how long ago.
func activity(at, now time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return at.Local().Format(time.DateTime) + " (" + idle(at, now) + " ago)"
}

// idle is how long ago at was, to the second.
func idle(at, now time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return max(0, now.Sub(at)).Truncate(time.Second).String()
}
