package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

// processList is ps. Background processes are started with exec
// --background.
func processList(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("ps", std, "Usage: sandboxctl ps [--json] ID\n\n"+
		"Lists session ID's background processes, oldest first: id, PID, status,\nexit code, start time and command.\n\nFlags:\n")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("ps takes one session ID")
	}
	list, err := c.ListProcesses(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []api.Process{}
		}
		return printJSON(std.out, api.ProcessList{Processes: list})
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tSTATUS\tEXIT\tSTARTED\tCOMMAND")
	for _, p := range list {
		exit := "-"
		if p.ExitCode != nil {
			exit = strconv.Itoa(*p.ExitCode)
		}
		// A multi-line command would break the table.
		command := strings.Join(strings.Fields(p.Command), " ")
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.ID, p.PID, p.Status, exit, p.StartedAt.Local().Format(time.DateTime), command)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func processLogs(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("logs", std, "Usage: sandboxctl logs [--filter RE] ID PID\n\n"+
		"Prints the output lines of background process PID (its ID in ps) of session\nID that were not read before: each line is read once.\n\nFlags:\n")
	filter := fs.String("filter", "", "only print the lines this regular expression matches; the others are read all the same")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("logs takes a session ID and a process ID")
	}
	out, err := c.ProcessOutput(ctx, fs.Arg(0), fs.Arg(1), *filter)
	if err != nil {
		return err
	}
	return printLines(std, out)
}

func processKill(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("kill", std, "Usage: sandboxctl kill [--grace 5s] ID PID\n\n"+
		"Kills background process PID of session ID: SIGTERM to its whole tree, then\nSIGKILL after the grace. Prints its unread output, then how it ended on\nstderr; the process is then gone from ps.\n\nFlags:\n")
	grace := fs.Duration("grace", 0, "time between SIGTERM and SIGKILL, e.g. 5s or 500ms (default: the daemon's, 5s)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("kill takes a session ID and a process ID")
	}
	if *grace < 0 {
		return usagef("kill: --grace must not be negative")
	}
	out, err := c.KillProcess(ctx, fs.Arg(0), fs.Arg(1), *grace)
	if err != nil {
		return err
	}
	if err := printLines(std, out); err != nil {
		return err
	}
	fmt.Fprintf(std.err, "sandboxctl: process %s (pid %d) %s\n", out.ID, out.PID, ending(out.Process))
	return nil
}

// printLines prints out's lines and notes on stderr those dropped unread.
func printLines(std stdio, out api.ProcessOutput) error {
	for _, l := range out.Lines {
		if _, err := fmt.Fprintln(std.out, l); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if out.Dropped > 0 {
		fmt.Fprintf(std.err, "sandboxctl: %d lines were dropped before they were read\n", out.Dropped)
	}
	return nil
}

// ending says how a process ended, e.g. "killed, exit code 143 (SIGTERM)".
func ending(p api.Process) string {
	s := p.Status
	if p.ExitCode != nil {
		s += fmt.Sprintf(", exit code %d", *p.ExitCode)
	}
	if p.Signal != "" {
		s += " (" + p.Signal + ")"
	}
	return s
}
