package main

import (
	"context"

	"github.com/sandboxd/sandboxd/api/client"
)

func info(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("info", std, "Usage: sandboxctl info\n\nDescribes the daemon.\n")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("info takes no arguments")
	}
	inf, err := c.Info(ctx)
	if err != nil {
		return err
	}
	return printJSON(std.out, inf)
}
