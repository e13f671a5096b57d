package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

// rootFlag adds --root, which every files command takes.
func rootFlag(fs *flag.FlagSet) *string {
	return fs.String("root", api.RootWorkspace, "the tree the path is in: workspace or shared")
}

func list(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("ls", std, "Usage: sandboxctl ls [--root R] [-r] [--json] ID [PATH]\n\n"+
		"Lists directory PATH (the root by default) of session ID: type, mode, size,\nmodification time and name.\n\nFlags:\n")
	root := rootFlag(fs)
	recursive := fs.Bool("r", false, "list subdirectories too, with paths relative to the root")
	asJSON := fs.Bool("json", false, "print the listing as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return usagef("ls takes a session ID and optionally a PATH")
	}
	l, err := c.ListFiles(ctx, fs.Arg(0), *root, fs.Arg(1), *recursive)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(std.out, l)
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	for _, e := range l.Entries {
		name := e.Name
		if *recursive {
			name = e.Path
		}
		switch e.Type {
		case api.TypeDir:
			name += "/"
		case api.TypeSymlink:
			name += " -> " + e.LinkTarget
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.Type, e.Mode, e.Size, e.ModTime.Local().Format(time.DateTime), name)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if l.Truncated {
		fmt.Fprintln(std.err, "sandboxctl: the listing stopped at the daemon's entry limit")
	}
	return nil
}

func stat(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("stat", std, "Usage: sandboxctl stat [--root R] ID PATH\n\nDescribes PATH of session ID.\n\nFlags:\n")
	root := rootFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("stat takes a session ID and a PATH")
	}
	info, err := c.StatFile(ctx, fs.Arg(0), *root, fs.Arg(1))
	if err != nil {
		return err
	}
	return printJSON(std.out, info)
}

func cat(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("cat", std, "Usage: sandboxctl cat [--root R] ID PATH\n\nWrites file PATH of session ID to stdout.\n\nFlags:\n")
	root := rootFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("cat takes a session ID and a PATH")
	}
	rc, err := c.ReadFile(ctx, fs.Arg(0), *root, fs.Arg(1), 0, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(std.out, rc); err != nil {
		return fmt.Errorf("cat %s: %w", fs.Arg(1), err)
	}
	return nil
}

func remove(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("rm", std, "Usage: sandboxctl rm [--root R] [-r] ID PATH\n\nRemoves PATH from session ID.\n\nFlags:\n")
	root := rootFlag(fs)
	recursive := fs.Bool("r", false, "remove a directory and everything in it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("rm takes a session ID and a PATH")
	}
	return c.RemoveFile(ctx, fs.Arg(0), *root, fs.Arg(1), *recursive)
}

func mkdir(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("mkdir", std, "Usage: sandboxctl mkdir [--root R] [-p] ID PATH\n\n"+
		"Creates directory PATH in session ID and prints it.\n\nFlags:\n")
	root := rootFlag(fs)
	parents := fs.Bool("p", false, "create missing parents; an existing directory is no error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("mkdir takes a session ID and a PATH")
	}
	info, err := c.Mkdir(ctx, fs.Arg(0), *root, api.MkdirRequest{Path: fs.Arg(1), Parents: *parents})
	if err != nil {
		return err
	}
	return printJSON(std.out, info)
}

func move(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("mv", std, "Usage: sandboxctl mv [--root R] [--overwrite] ID FROM TO\n\n"+
		"Moves FROM to TO within the root of session ID and prints the result.\n\nFlags:\n")
	root := rootFlag(fs)
	overwrite := fs.Bool("overwrite", false, "replace an existing TO")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 3 {
		return usagef("mv takes a session ID, FROM and TO")
	}
	info, err := c.MoveFile(ctx, fs.Arg(0), *root, api.MoveRequest{From: fs.Arg(1), To: fs.Arg(2), Overwrite: *overwrite})
	if err != nil {
		return err
	}
	return printJSON(std.out, info)
}

func edit(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("edit", std, "Usage: sandboxctl edit [--root R] --old X --new Y [--count N] ID PATH\n\n"+
		"Replaces X by Y in file PATH of session ID and prints the result. X must\noccur exactly once, or exactly N times.\n\nFlags:\n")
	root := rootFlag(fs)
	var req api.EditRequest
	fs.StringVar(&req.Old, "old", "", "the text to replace (required)")
	fs.StringVar(&req.New, "new", "", "its replacement")
	fs.IntVar(&req.Count, "count", 0, "how many times X must occur (default: exactly once)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("edit takes a session ID and a PATH")
	}
	if req.Old == "" {
		return usagef("edit: --old is required")
	}
	req.Path = fs.Arg(1)
	res, err := c.EditFile(ctx, fs.Arg(0), *root, req)
	if err != nil {
		return err
	}
	return printJSON(std.out, res)
}
