package packages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"
)

// testCache is a cache under a temporary state directory with the given
// allow-list, and a directory of wheels to add from.
type testCache struct {
	*Cache
	listPath string
	src      string
}

func newTestCache(t *testing.T, list string) testCache {
	t.Helper()
	state := t.TempDir()
	listPath := filepath.Join(state, "allowed_packages.txt")
	require.NoError(t, os.WriteFile(listPath, []byte(list), 0o644))
	c, err := Open(filepath.Join(state, "package_cache"), NewAllowFile(listPath))
	require.NoError(t, err)
	src := filepath.Join(state, "src")
	require.NoError(t, os.Mkdir(src, 0o755))
	return testCache{Cache: c, listPath: listPath, src: src}
}

func (tc testCache) wheel(t *testing.T, w wheeltest.Spec) string {
	t.Helper()
	return wheeltest.Write(t, tc.src, w)
}

func (tc testCache) setList(t *testing.T, list string) {
	t.Helper()
	require.NoError(t, os.WriteFile(tc.listPath+".new", []byte(list), 0o644))
	require.NoError(t, os.Rename(tc.listPath+".new", tc.listPath))
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func presentedNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestAdd(t *testing.T) {
	tc := newTestCache(t, "alpha>=1.0\nbeta\n")
	good := tc.wheel(t, wheeltest.Spec{Name: "alpha", Version: "1.0", Requires: []string{"beta>=1.0"}})

	added, err := tc.Add(good)
	require.NoError(t, err)
	require.Len(t, added, 1)
	assert.Equal(t, "alpha", added[0].Name)
	assert.Equal(t, sha256File(t, good), added[0].SHA256, "the index records the file's sha256")
	assert.Equal(t, []string{"beta>=1.0"}, added[0].RequiresDist, "the index records Requires-Dist")
	fi, err := os.Stat(filepath.Join(tc.Dir(), "wheels", filepath.Base(good)))
	require.NoError(t, err, "the wheel is copied in")
	assert.Equal(t, os.FileMode(0o444), fi.Mode().Perm(), "cached wheels are read-only")

	again, err := tc.Add(good)
	require.NoError(t, err, "adding the same file again is a no-op")
	assert.Equal(t, added, again)

	tests := []struct {
		desc  string
		file  string
		match error
		text  string
	}{
		{"refused by the list", tc.wheel(t, wheeltest.Spec{Name: "gamma", Version: "1.0"}), ErrNotAllowed, "gamma is not on the package allow-list"},
		{"version refused by the list", tc.wheel(t, wheeltest.Spec{Name: "alpha", Version: "0.9"}), ErrNotAllowed, "alpha 0.9 is not allowed: the allow-list's line 1 says alpha>=1.0"},
		{"METADATA mismatch", tc.wheel(t, wheeltest.Spec{Name: "beta", Version: "1.0", MetaVersion: "1.1"}), ErrBadWheel, `METADATA has version "1.1"`},
		{"not a zip", writeFile(t, filepath.Join(tc.src, "beta-2.0-py3-none-any.whl"), "junk"), ErrBadWheel, "zip"},
		{"bad file name", writeFile(t, filepath.Join(tc.src, "beta.whl"), "junk"), ErrBadWheel, "name-version"},
		{"sdist", writeFile(t, filepath.Join(tc.src, "beta-1.0.tar.gz"), "junk"), ErrBadWheel, "source distributions are not accepted"},
		{"missing file", filepath.Join(tc.src, "beta-3.0-py3-none-any.whl"), os.ErrNotExist, "no such file"},
	}
	for _, tt := range tests {
		_, err := tc.Add(tt.file)
		assert.ErrorIs(t, err, tt.match, tt.desc)
		assert.ErrorContains(t, err, tt.text, tt.desc)
		assert.ErrorContains(t, err, tt.file, "%s: the error names the file", tt.desc)
	}

	// Same file name, other content: refused, never replaced silently.
	other := filepath.Join(t.TempDir(), filepath.Base(good))
	wheeltest.Write(t, filepath.Dir(other), wheeltest.Spec{Name: "alpha", Version: "1.0", Requires: []string{"beta>=2.0"}})
	_, err = tc.Add(other)
	assert.ErrorIs(t, err, ErrDuplicate)

	// Several files: the good ones go in, the error lists the others.
	b1 := tc.wheel(t, wheeltest.Spec{Name: "beta", Version: "1.5"})
	added, err = tc.Add(b1, tests[0].file)
	assert.ErrorIs(t, err, ErrNotAllowed)
	require.Len(t, added, 1)
	assert.Equal(t, "beta", added[0].Name)

	list, err := tc.List()
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, []string{"alpha", "beta"}, []string{list[0].Name, list[1].Name}, "the index holds exactly what was accepted")
	entries, err := os.ReadDir(filepath.Join(tc.Dir(), "wheels"))
	require.NoError(t, err)
	assert.Len(t, entries, 2, "refused files leave nothing behind in wheels/")
}

func writeFile(t *testing.T, p, content string) string {
	t.Helper()
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestPresent(t *testing.T) {
	tc := newTestCache(t, "alpha\nbeta<2\n")
	_, err := tc.Add(
		tc.wheel(t, wheeltest.Spec{Name: "alpha", Version: "1.0"}),
		tc.wheel(t, wheeltest.Spec{Name: "beta", Version: "1.0"}),
		tc.wheel(t, wheeltest.Spec{Name: "beta", Version: "1.5"}),
	)
	require.NoError(t, err)
	tc.setList(t, "alpha\nbeta<2\ngamma\n")
	_, err = tc.Add(tc.wheel(t, wheeltest.Spec{Name: "gamma", Version: "1.0"}))
	require.NoError(t, err)
	tc.setList(t, "alpha\nbeta<1.2\n")

	p, err := tc.Present()
	require.NoError(t, err)
	assert.Empty(t, p.Tampered)
	assert.Equal(t, []string{"allowed_packages.txt", "alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"},
		presentedNames(t, p.Dir), "only what the list now allows is presented")
	list, err := os.ReadFile(filepath.Join(p.Dir, AllowListCopy))
	require.NoError(t, err)
	assert.Equal(t, "alpha\nbeta<1.2\n", string(list), "the list's copy is presented for the pip shim")
	a, err := os.Stat(filepath.Join(p.Dir, "alpha-1.0-py3-none-any.whl"))
	require.NoError(t, err)
	b, err := os.Stat(filepath.Join(tc.Dir(), "wheels", "alpha-1.0-py3-none-any.whl"))
	require.NoError(t, err)
	assert.True(t, os.SameFile(a, b), "presented wheels are hard links to the cache")

	tc.setList(t, "beta\n")
	p, err = tc.Present()
	require.NoError(t, err)
	assert.Equal(t, []string{"allowed_packages.txt", "beta-1.0-py3-none-any.whl", "beta-1.5-py3-none-any.whl"},
		presentedNames(t, p.Dir), "a changed list is applied in place: alpha goes, beta 1.5 comes")

	tc.setList(t, "beta\nbad==line==\n")
	_, err = tc.Present()
	require.ErrorIs(t, err, ErrAllowList)
	assert.Equal(t, []string{"allowed_packages.txt", "beta-1.0-py3-none-any.whl", "beta-1.5-py3-none-any.whl"},
		presentedNames(t, p.Dir), "a bad list leaves the directory as it was")
}

func TestPresentRefusesTamperedWheel(t *testing.T) {
	tc := newTestCache(t, "alpha\nbeta\n")
	_, err := tc.Add(
		tc.wheel(t, wheeltest.Spec{Name: "alpha", Version: "1.0"}),
		tc.wheel(t, wheeltest.Spec{Name: "beta", Version: "1.0"}),
	)
	require.NoError(t, err)
	p, err := tc.Present()
	require.NoError(t, err)
	require.Len(t, p.Wheels, 2)

	// Someone with access to the cache swaps alpha's content for another
	// valid wheel: same name, other bytes.
	cached := filepath.Join(tc.Dir(), "wheels", "alpha-1.0-py3-none-any.whl")
	evil := wheeltest.Write(t, t.TempDir(), wheeltest.Spec{Name: "alpha", Version: "1.0", Requires: []string{"evil"}})
	data, err := os.ReadFile(evil)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(cached, 0o644))
	require.NoError(t, os.WriteFile(cached, data, 0o644))

	p, err = tc.Present()
	require.NoError(t, err)
	assert.Equal(t, []string{"alpha-1.0-py3-none-any.whl"}, p.Tampered, "the tampered wheel is named")
	assert.Equal(t, []string{"allowed_packages.txt", "beta-1.0-py3-none-any.whl"}, presentedNames(t, p.Dir),
		"the tampered wheel is withdrawn from sessions")

	_, err = tc.Plan([]string{"alpha"}, Installed{})
	assert.ErrorIs(t, err, ErrUnavailable, "a tampered wheel is not planned")
	assert.ErrorContains(t, err, "failed its hash check")

	// A tampered wheel that was never presented is refused too.
	require.NoError(t, os.Remove(cached))
	p, err = tc.Present()
	require.NoError(t, err)
	assert.Equal(t, []string{"alpha-1.0-py3-none-any.whl"}, p.Tampered, "a missing wheel is named too")
}

type fakeDownloader struct {
	files map[string]string // name → source path
	err   error
}

func (f fakeDownloader) Download(_ context.Context, _, dest string) error {
	for name, src := range f.files {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dest, name), data, 0o644); err != nil {
			return err
		}
	}
	return f.err
}

func TestFetch(t *testing.T) {
	tc := newTestCache(t, "alpha\nbeta\n")
	a := tc.wheel(t, wheeltest.Spec{Name: "alpha", Version: "2.0", Requires: []string{"beta", "gamma"}})
	b := tc.wheel(t, wheeltest.Spec{Name: "beta", Version: "1.0"})
	g := tc.wheel(t, wheeltest.Spec{Name: "gamma", Version: "1.0"})
	req := writeFile(t, filepath.Join(tc.src, "requirements.txt"), "alpha\n")

	added, err := tc.Fetch(context.Background(), req, fakeDownloader{files: map[string]string{
		filepath.Base(a): a, filepath.Base(b): b, filepath.Base(g): g, "alpha-2.0.tar.gz": req,
	}})
	assert.ErrorIs(t, err, ErrNotAllowed, "a dependency the list does not allow is refused")
	assert.ErrorContains(t, err, "gamma is not on the package allow-list")
	assert.ErrorContains(t, err, "source distributions are not accepted")
	require.Len(t, added, 2)
	assert.Equal(t, []string{"alpha", "beta"}, []string{added[0].Name, added[1].Name})

	_, err = tc.Fetch(context.Background(), req, fakeDownloader{err: errors.New("no network")})
	assert.ErrorContains(t, err, "no network")
	entries, err := os.ReadDir(tc.Dir())
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".fetch-", "the download directory is removed")
	}
}

// TestFetchWithPip runs the real downloader offline: pip wheel from a
// local directory (--no-index --find-links), as a connected host would
// from an index.
func TestFetchWithPip(t *testing.T) {
	python := wheeltest.HostPython(t)
	tc := newTestCache(t, "alpha\nbeta\n")
	links := t.TempDir()
	wheeltest.Write(t, links, wheeltest.Spec{Name: "alpha", Version: "2.0", Requires: []string{"beta>=1.0"}})
	wheeltest.Write(t, links, wheeltest.Spec{Name: "beta", Version: "1.0"})
	wheeltest.Write(t, links, wheeltest.Spec{Name: "beta", Version: "0.5"})
	req := writeFile(t, filepath.Join(tc.src, "requirements.txt"), "alpha\n")

	added, err := tc.Fetch(context.Background(), req, PipDownloader{Python: python, Args: []string{"--no-index", "--find-links", links}})
	require.NoError(t, err)
	var got []string
	for _, d := range added {
		got = append(got, d.Name+"=="+d.Version)
	}
	assert.Equal(t, []string{"alpha==2.0", "beta==1.0"}, got, "pip fetched the requirement and its dependency")
}

// TestIndexRefusesPaths: a file name in the index becomes a path, so one
// that is not a single wheel name makes the index unreadable rather than
// a way out of the cache.
func TestIndexRefusesPaths(t *testing.T) {
	tc := newTestCache(t, "x\n")
	writeFile(t, filepath.Join(tc.Dir(), "index.json"),
		`{"format": 1, "dists": [{"name": "x", "version": "1.0", "filename": "../../x-1.0-py3-none-any.whl"}]}`)
	_, err := tc.List()
	assert.ErrorIs(t, err, ErrBadWheel)
	_, err = tc.Present()
	assert.ErrorIs(t, err, ErrBadWheel)
}

// TestConcurrentWriters: the daemon and a `packages add` process write
// the same cache; the lock keeps every entry of the index.
func TestConcurrentWriters(t *testing.T) {
	tc := newTestCache(t, "p0\np1\np2\np3\np4\np5\np6\np7\n")
	other, err := Open(tc.Dir(), NewAllowFile(tc.listPath))
	require.NoError(t, err)
	var files []string
	for i := 0; i < 8; i++ {
		files = append(files, tc.wheel(t, wheeltest.Spec{Name: fmt.Sprintf("p%d", i), Version: "1.0"}))
	}
	errs := make(chan error, len(files)+2)
	var wg sync.WaitGroup
	for i, f := range files {
		c := tc.Cache
		if i%2 == 1 {
			c = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Add(f)
			errs <- err
		}()
	}
	for _, c := range []*Cache{tc.Cache, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Present()
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	list, err := tc.List()
	require.NoError(t, err)
	assert.Len(t, list, len(files), "no concurrent Add lost its index entry")
	p, err := other.Present()
	require.NoError(t, err)
	assert.Len(t, p.Wheels, len(files))
}
