package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/sandboxd/sandboxd/api/client"
)

const copyUsage = `Usage: sandboxctl cp [--root R] [--mkdirs] SRC DST

Copies a file into or out of a session: exactly one of SRC and DST is
ID:PATH. The other is a local file, or - for stdin (upload) or stdout
(download); write a local path with a colon as ./a:b. An upload prints the
stored size and SHA-256 on stderr.

Flags:
`

func copyFile(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("cp", std, copyUsage)
	root := rootFlag(fs)
	mkdirs := fs.Bool("mkdirs", false, "create missing parent directories of an upload")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("cp takes SRC and DST")
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	srcID, srcPath, fromSession := sessionPath(src)
	dstID, dstPath, toSession := sessionPath(dst)
	switch {
	case fromSession == toSession:
		return usagef("cp: exactly one of SRC and DST is ID:PATH")
	case toSession:
		return upload(ctx, c, src, dstID, *root, dstPath, *mkdirs, std)
	default:
		rc, err := c.ReadFile(ctx, srcID, *root, srcPath, 0, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
			dst = filepath.Join(dst, path.Base(srcPath))
		}
		return save(rc, dst, std.out)
	}
}

// sessionPath splits ID:PATH. An argument with a slash before its first
// colon, or none, is local.
func sessionPath(arg string) (id, p string, ok bool) {
	id, p, ok = strings.Cut(arg, ":")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return id, p, true
}

func upload(ctx context.Context, c *client.Client, src, id, root, p string, mkdirs bool, std stdio) error {
	if p == "" {
		return usagef("cp: the destination %s: has no PATH", id)
	}
	body := std.in
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("cp: %w", err)
		}
		defer f.Close()
		body = f
	}
	res, err := c.WriteFile(ctx, id, root, p, body, mkdirs)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.err, "%s: %d bytes, sha256 %s\n", res.Path, res.Size, res.SHA256)
	return nil
}

// save copies r to file dst, or to stdout for "-". A failed copy leaves no
// file behind.
func save(r io.Reader, dst string, stdout io.Writer) error {
	if dst == "-" {
		if _, err := io.Copy(stdout, r); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
		return nil
	}
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	_, err = io.Copy(f, r)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return errors.Join(fmt.Errorf("save %s: %w", dst, err), os.Remove(dst))
	}
	return nil
}

func download(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("download", std, "Usage: sandboxctl download USER NAME [DST]\n\n"+
		"Downloads the user's kept output file NAME to DST: NAME in the working\ndirectory by default, - for stdout.\n")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.NArg() > 3 {
		return usagef("download takes USER, NAME and optionally DST")
	}
	name := fs.Arg(1)
	dst := fs.Arg(2)
	if dst == "" {
		dst = filepath.Base(name)
	}
	rc, err := c.DownloadOutput(ctx, fs.Arg(0), name)
	if err != nil {
		return err
	}
	defer rc.Close()
	return save(rc, dst, std.out)
}
