package mounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxNameTries bounds the search for a free name in outputs/.
const maxNameTries = 10000

// KeepFiles moves the regular files at the top of from whose extension is in
// exts (case-insensitive, with the dot: ".pdf") into to, never replacing a
// file there: a taken name gets a "-N" suffix before its extension. It
// returns the names the files got. Symlinks, directories and other special
// files are left behind, so nothing the sandbox planted can point outside.
func KeepFiles(from, to string, exts []string) ([]string, error) {
	entries, err := os.ReadDir(from)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keep files: %w", err)
	}
	var kept []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !hasExt(e.Name(), exts) {
			continue
		}
		name, err := moveNoReplace(filepath.Join(from, e.Name()), to, e.Name())
		if err != nil {
			return kept, fmt.Errorf("keep %q: %w", e.Name(), err)
		}
		kept = append(kept, name)
	}
	return kept, nil
}

func hasExt(name string, exts []string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range exts {
		if ext != "" && ext == strings.ToLower(e) {
			return true
		}
	}
	return false
}

// moveNoReplace renames src into dir under name or the first free
// "stem-N.ext"; RENAME_NOREPLACE makes the check and the move one step.
func moveNoReplace(src, dir, name string) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 0; i < maxNameTries; i++ {
		candidate := name
		if i > 0 {
			candidate = stem + "-" + strconv.Itoa(i) + ext
		}
		err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, filepath.Join(dir, candidate), unix.RENAME_NOREPLACE)
		if err == nil {
			return candidate, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for %q in %s", name, dir)
}
