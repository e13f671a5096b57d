package main

import (
	"context"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

const sessionUsage = `Usage: sandboxctl session COMMAND [ARGS]

Commands:
  create --user U [--id S] [LIMITS]   create a session
  ls [--user U]                       list sessions
  get ID                              describe a session
  rm [--keep-files] ID                delete a session

Run 'sandboxctl session COMMAND --help' for a command's flags.
`

func session(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("session", std, sessionUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("missing session command; see sandboxctl session --help")
	}
	switch cmd, rest := fs.Arg(0), fs.Args()[1:]; cmd {
	case "create":
		return sessionCreate(ctx, c, rest, std)
	case "ls":
		return sessionList(ctx, c, rest, std)
	case "get":
		return sessionGet(ctx, c, rest, std)
	case "rm":
		return sessionRemove(ctx, c, rest, std)
	default:
		return usagef("unknown session command %q; see sandboxctl session --help", cmd)
	}
}

func sessionCreate(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("session create", std, "Usage: sandboxctl session create --user U [--id S] [LIMITS]\n\n"+
		"Creates a session and prints it. Limits left out take the daemon's defaults.\n\nFlags:\n")
	user := fs.String("user", "", "the user the session belongs to (required)")
	id := fs.String("id", "", "the session's id (default: the daemon picks one)")
	var lim api.Limits
	fs.Float64Var(&lim.CPUs, "cpus", 0, "CPU bandwidth in cores, e.g. 0.5")
	fs.Int64Var(&lim.MemoryMB, "memory-mb", 0, "memory limit in MiB")
	fs.Int64Var(&lim.Pids, "pids", 0, "maximum number of processes and threads")
	fs.Int64Var(&lim.TmpMB, "tmp-mb", 0, "size of /tmp in MiB (counts against the memory limit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("session create takes no arguments, got %q", fs.Args())
	}
	if *user == "" {
		return usagef("session create: --user is required")
	}
	req := api.CreateSessionRequest{UserID: *user, SessionID: *id}
	if lim != (api.Limits{}) {
		req.Limits = &lim
	}
	sess, err := c.CreateSession(ctx, req)
	if err != nil {
		return err
	}
	return printJSON(std.out, sess)
}

func sessionList(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("session ls", std, "Usage: sandboxctl session ls [--user U]\n\nLists live sessions.\n\nFlags:\n")
	user := fs.String("user", "", "only list this user's sessions")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("session ls takes no arguments, got %q", fs.Args())
	}
	list, err := c.ListSessions(ctx, *user)
	if err != nil {
		return err
	}
	if list == nil {
		list = []api.Session{}
	}
	return printJSON(std.out, api.SessionList{Sessions: list})
}

func sessionGet(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("session get", std, "Usage: sandboxctl session get ID\n\nDescribes a session.\n")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("session get takes one session ID")
	}
	sess, err := c.GetSession(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	return printJSON(std.out, sess)
}

func sessionRemove(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("session rm", std, "Usage: sandboxctl session rm [--keep-files] ID\n\nDeletes a session.\n\nFlags:\n")
	keep := fs.Bool("keep-files", false, "move the session's output files to shared_files/outputs/ first")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("session rm takes one session ID")
	}
	res, err := c.DeleteSession(ctx, fs.Arg(0), *keep)
	if err != nil {
		return err
	}
	return printJSON(std.out, res)
}
