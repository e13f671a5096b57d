package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

const pkgUsage = `Usage: sandboxctl pkg install [--json] ID REQUIREMENT...
       sandboxctl pkg ls [--json] ID

install installs PEP 508 requirements ("pandas>=2,<3") into session ID,
offline, from the daemon's package cache and as its allow-list allows;
pip's output goes to stderr as it is written, then what was installed to
stdout. ls lists what the session has beyond its base environment.
`

func pkg(ctx context.Context, c *client.Client, args []string, std stdio) error {
	if len(args) == 0 {
		fmt.Fprint(std.err, pkgUsage)
		return usagef("pkg: missing install or ls")
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "install":
		return pkgInstall(ctx, c, rest, std)
	case "ls":
		return pkgList(ctx, c, rest, std)
	case "-h", "-help", "--help":
		fmt.Fprint(std.err, pkgUsage)
		return nil
	default:
		return usagef("pkg: unknown command %q; see sandboxctl pkg --help", sub)
	}
}

func pkgInstall(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("pkg install", std, pkgUsage+"\nFlags:\n")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usagef("pkg install takes a session ID and at least one requirement")
	}
	res, err := c.InstallPackagesStream(ctx, fs.Arg(0), fs.Args()[1:], func(ev api.ExecEvent) error {
		data := []byte(ev.Data)
		if ev.DataB64 != "" {
			var err error
			if data, err = base64.StdEncoding.DecodeString(ev.DataB64); err != nil {
				return fmt.Errorf("decode %s: %w", ev.Type, err)
			}
		}
		if _, err := std.err.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", ev.Type, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(std.out, res)
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	for _, p := range res.Installed {
		fmt.Fprintf(tw, "installed\t%s\t%s\t%s\n", p.Name, p.Version, requiredBy(p.RequiredBy))
	}
	for _, p := range res.Satisfied {
		fmt.Fprintf(tw, "already there\t%s\t%s\t%s\n", p.Name, p.Version, requiredBy(p.RequiredBy))
	}
	return flush(tw)
}

func requiredBy(by string) string {
	if by == "" {
		return ""
	}
	return "(required by " + by + ")"
}

func pkgList(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("pkg ls", std, pkgUsage+"\nFlags:\n")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("pkg ls takes one session ID")
	}
	res, err := c.ListPackages(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(std.out, res)
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION")
	for _, p := range res.Packages {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Version)
	}
	return flush(tw)
}

func envList(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("envs", std, "Usage: sandboxctl envs [--json]\n\n"+
		"Lists the versions of the base environment, oldest first: the one new\n"+
		"sessions get is current; the others are kept while sessions use them.\n\nFlags:\n")
	asJSON := fs.Bool("json", false, "print the list, with every package of each version, as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("envs takes no arguments")
	}
	list, err := c.ListEnvs(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []api.Env{}
		}
		return printJSON(std.out, api.EnvList{Envs: list})
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCURRENT\tSESSIONS\tPYTHON\tCREATED\tMISSING")
	for _, e := range list {
		current := ""
		if e.Current {
			current = "*"
		}
		var missing []string
		for _, m := range e.Missing {
			missing = append(missing, m.Requirement)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", e.ID, current, e.Sessions, e.Python,
			e.Created.Local().Format(time.DateTime), strings.Join(missing, " "))
	}
	return flush(tw)
}

func flush(tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
