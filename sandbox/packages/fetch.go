package packages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// Downloader puts wheels for the requirements in requirementsFile (and
// their dependencies) into destDir.
type Downloader interface {
	Download(ctx context.Context, requirementsFile, destDir string) error
}

// PipDownloader downloads with `python -m pip wheel`, which fetches
// wheels and builds one from any sdist, on a connected host. Python
// should be the interpreter the base env is built from (the same Debian
// release), so that the wheels fit the sandboxes. Args are added to pip's
// (e.g. --no-index --find-links DIR, to take wheels from a directory).
type PipDownloader struct {
	Python string
	Args   []string
}

// Download runs pip; its output is in the error when it fails.
func (p PipDownloader) Download(ctx context.Context, requirementsFile, destDir string) error {
	args := append([]string{"-m", "pip", "wheel", "--disable-pip-version-check", "--no-input",
		"--wheel-dir", destDir, "--requirement", requirementsFile}, p.Args...)
	cmd := exec.CommandContext(ctx, p.Python, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -m pip wheel: %w: %s", p.Python, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// Fetch downloads the requirements in requirementsFile with d into a
// temporary directory in the cache and adds every wheel it got (Add's
// checks apply, the allow-list's included: a dependency the list does not
// allow is refused and named in the error). It returns what it added.
func (c *Cache) Fetch(ctx context.Context, requirementsFile string, d Downloader) ([]Dist, error) {
	tmp, err := os.MkdirTemp(c.dir, ".fetch-*")
	if err != nil {
		return nil, fmt.Errorf("package cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := d.Download(ctx, requirementsFile, tmp); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", requirementsFile, err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("package cache: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, filepath.Join(tmp, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("fetch %s: %w", requirementsFile, errors.New("the download produced no files"))
	}
	sort.Strings(files)
	return c.Add(files...)
}
