package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/sandboxd/sandboxd/cmd/sandboxd/internal/config"
	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/packages"
)

const packagesUsage = `Usage: sandboxd packages add FILE...             add wheels to the package cache
       sandboxd packages fetch -r requirements.txt  download wheels (a connected host) and add them
       sandboxd packages ls                         list the package cache

The cache holds wheels only, each checked (a well-formed wheel whose name
and metadata agree) and allowed by the allow-list, with its sha256; sessions
install from it offline. These commands work beside a running daemon (the
cache has its own lock) and show new wheels to running sessions at once.
`

// packagesCommand is `sandboxd packages`; it writes what it did to out.
func packagesCommand(ctx context.Context, cfg config.Config, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("packages: missing add, fetch or ls\n%s", packagesUsage)
	}
	cache, err := sandbox.OpenPackageCache(cfg.StateDir)
	if err != nil {
		return err
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "add":
		if len(rest) == 0 {
			return errors.New("packages add: name at least one wheel")
		}
		added, err := cache.Add(rest...)
		return report(cache, out, added, err)
	case "fetch":
		fs := flag.NewFlagSet("packages fetch", flag.ContinueOnError)
		requirements := fs.String("r", "", "the requirements file to download (with their dependencies)")
		findLinks := fs.String("find-links", "", "take the wheels and sdists from this directory instead of the package index")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if *requirements == "" || fs.NArg() != 0 {
			return errors.New("packages fetch: give -r requirements.txt and nothing else")
		}
		d := packages.PipDownloader{Python: cfg.Python}
		if *findLinks != "" {
			d.Args = []string{"--no-index", "--find-links", *findLinks}
		}
		added, err := cache.Fetch(ctx, *requirements, d)
		return report(cache, out, added, err)
	case "ls":
		if len(rest) != 0 {
			return errors.New("packages ls takes no arguments")
		}
		return listCache(cache, out)
	default:
		return fmt.Errorf("packages: unknown command %q\n%s", sub, packagesUsage)
	}
}

// report prints what was added, presents the cache to running sessions,
// and returns the refusals.
func report(cache *packages.Cache, out io.Writer, added []packages.Dist, addErr error) error {
	for _, d := range added {
		fmt.Fprintf(out, "added %s %s (%s, sha256 %s)\n", d.Name, d.Version, d.Filename, d.SHA256)
	}
	p, err := cache.Present()
	if err == nil && len(p.Tampered) > 0 {
		err = fmt.Errorf("cached wheels fail their hash check and are withheld from sessions: %s", strings.Join(p.Tampered, ", "))
	}
	return errors.Join(addErr, err)
}

func listCache(cache *packages.Cache, out io.Writer) error {
	dists, err := cache.List()
	if err != nil {
		return err
	}
	p, err := cache.Present()
	if err != nil {
		return err
	}
	shown := map[string]bool{}
	for _, d := range p.Wheels {
		shown[d.Filename] = true
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSESSIONS SEE IT\tFILE\tSHA256")
	for _, d := range dists {
		seen := "no (the allow-list refuses it)"
		switch {
		case shown[d.Filename]:
			seen = "yes"
		case slices.Contains(p.Tampered, d.Filename):
			seen = "no (fails its hash check)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Version, seen, d.Filename, d.SHA256)
	}
	return tw.Flush()
}
