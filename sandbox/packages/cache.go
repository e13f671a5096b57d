package packages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

const (
	indexName     = "index.json"
	wheelsName    = "wheels"
	presentedName = "allowed"
	lockName      = ".lock"
	indexFormat   = 1
)

// ErrDuplicate is returned by Add for a file name the cache already holds
// with different content.
var ErrDuplicate = errors.New("already in the package cache with different content")

// Cache is the local package cache. Its methods may be called from
// several goroutines and processes: writers hold an flock on the cache's
// lock file, and the index is replaced atomically, so readers need none.
type Cache struct {
	dir  string
	list *AllowFile

	mu sync.Mutex
	// verified maps a wheel file name to the stat key it had when its
	// hash was last checked; a changed key means hashing it again.
	verified map[string]fileKey
}

// Open opens (creating if needed) the cache at dir, checked against list.
func Open(dir string, list *AllowFile) (*Cache, error) {
	for _, d := range []string{dir, filepath.Join(dir, wheelsName), filepath.Join(dir, presentedName)} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("package cache: %w", err)
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("package cache: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("package cache: %s is not a directory", d)
		}
	}
	return &Cache{dir: dir, list: list, verified: map[string]fileKey{}}, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// PresentedDir is the directory to bind read-only into sandboxes (at
// WheelsDir): the verified wheels the allow-list allows, and a copy of
// the list (AllowListCopy).
func (c *Cache) PresentedDir() string { return filepath.Join(c.dir, presentedName) }

func (c *Cache) wheelPath(filename string) string {
	return filepath.Join(c.dir, wheelsName, filename)
}

type index struct {
	Format int    `json:"format"`
	Dists  []Dist `json:"dists"`
}

// List returns what the cache holds, by name then version (newest last).
func (c *Cache) List() ([]Dist, error) {
	idx, err := c.readIndex()
	if err != nil {
		return nil, err
	}
	return idx.Dists, nil
}

func (c *Cache) readIndex() (index, error) {
	data, err := os.ReadFile(filepath.Join(c.dir, indexName))
	if errors.Is(err, os.ErrNotExist) {
		return index{Format: indexFormat}, nil
	}
	if err != nil {
		return index{}, fmt.Errorf("package cache index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return index{}, fmt.Errorf("package cache index %s: %w", filepath.Join(c.dir, indexName), err)
	}
	if idx.Format != indexFormat {
		return index{}, fmt.Errorf("package cache index %s: format %d, want %d", filepath.Join(c.dir, indexName), idx.Format, indexFormat)
	}
	for _, d := range idx.Dists {
		// The file name becomes a path: it must be one component.
		if _, err := ParseWheelName(d.Filename); err != nil {
			return index{}, fmt.Errorf("package cache index: %w", err)
		}
	}
	return idx, nil
}

func (c *Cache) writeIndex(idx index) error {
	sort.Slice(idx.Dists, func(i, j int) bool {
		a, b := idx.Dists[i], idx.Dists[j]
		if a.Key() != b.Key() {
			return a.Key() < b.Key()
		}
		if c := compareVersions(a.Version, b.Version); c != 0 {
			return c < 0
		}
		return a.Filename < b.Filename
	})
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("package cache index: %w", err)
	}
	return writeFileAtomic(filepath.Join(c.dir, indexName), append(data, '\n'), 0o644)
}

// compareVersions orders two versions already known to parse.
func compareVersions(a, b string) int {
	va, errA := pyreq.ParseVersion(a)
	vb, errB := pyreq.ParseVersion(b)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	return va.Compare(vb)
}

// lock takes the cache's cross-process writer lock.
func (c *Cache) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(c.dir, lockName), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("package cache lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("package cache lock: %w", err)
	}
	return func() { _ = f.Close() }, nil
}

// Add verifies each file (a well-formed wheel whose file name and METADATA
// agree, allowed by the allow-list), records its sha256 and copies it into
// the cache atomically. Files are taken one by one: it returns what it
// added and an error joining every refusal, each naming its file. Adding
// a file already cached with the same content is a no-op. Source
// distributions are refused: the cache holds wheels only. Call Present
// afterwards to show new wheels to sessions.
func (c *Cache) Add(files ...string) ([]Dist, error) {
	list, err := c.list.Load()
	if err != nil {
		return nil, err
	}
	var added []Dist
	var errs []error
	for _, f := range files {
		d, err := c.addOne(list, f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		added = append(added, d)
	}
	return added, errors.Join(errs...)
}

func (c *Cache) addOne(list *AllowList, src string) (Dist, error) {
	base := filepath.Base(src)
	if isSdist(base) {
		return Dist{}, fmt.Errorf("%w: source distributions are not accepted; build a wheel on a connected host (sandboxd packages fetch, or pip wheel) and add that", ErrBadWheel)
	}
	if _, err := ParseWheelName(base); err != nil {
		return Dist{}, err
	}
	// The copy is what gets verified and kept, so the source changing
	// under us cannot slip unverified bytes in.
	tmp, sum, size, err := c.copyIn(src)
	if err != nil {
		return Dist{}, err
	}
	defer os.Remove(tmp)
	d, err := inspectWheel(tmp, base)
	if err != nil {
		return Dist{}, err
	}
	d.SHA256, d.Size = sum, size
	if ok, reason := list.Allows(d.Name, d.Version); !ok {
		return Dist{}, &NotAllowedError{Name: d.Name, Version: d.Version, Reason: reason}
	}
	unlock, err := c.lock()
	if err != nil {
		return Dist{}, err
	}
	defer unlock()
	idx, err := c.readIndex()
	if err != nil {
		return Dist{}, err
	}
	for _, have := range idx.Dists {
		if have.Filename != base {
			continue
		}
		if have.SHA256 == d.SHA256 {
			return have, nil
		}
		return Dist{}, fmt.Errorf("%w: %s has sha256 %s, this file %s", ErrDuplicate, base, have.SHA256, d.SHA256)
	}
	if err := os.Rename(tmp, c.wheelPath(base)); err != nil {
		return Dist{}, fmt.Errorf("package cache: %w", err)
	}
	idx.Dists = append(idx.Dists, d)
	if err := c.writeIndex(idx); err != nil {
		// Without its entry the file is unknown to every reader; take it
		// back out so that a retry starts clean.
		_ = os.Remove(c.wheelPath(base))
		return Dist{}, err
	}
	return d, nil
}

func isSdist(name string) bool {
	for _, ext := range []string{".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tgz", ".tar"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// copyIn copies src into a new read-only temporary file in the cache,
// hashing it on the way.
func (c *Cache) copyIn(src string) (tmp, sum string, size int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", "", 0, err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Join(c.dir, wheelsName), ".incoming-*")
	if err != nil {
		return "", "", 0, fmt.Errorf("package cache: %w", err)
	}
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Chmod(0o444)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out.Name())
		return "", "", 0, fmt.Errorf("package cache: copying %s: %w", src, err)
	}
	return out.Name(), hex.EncodeToString(h.Sum(nil)), size, nil
}

// writeFileAtomic replaces path with data through a synced temporary file
// in the same directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return renameio.WriteFile(path, data, mode, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(mode))
}
