package main

import (
	"context"

	"github.com/sandboxd/sandboxd/api/client"
)

func user(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("user", std, "Usage: sandboxctl user ID\n\nDescribes a user: their limits (quota.json over the daemon's defaults),\ntheir disk usage and their sessions.\n")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("user takes one user ID")
	}
	u, err := c.User(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	return printJSON(std.out, u)
}
