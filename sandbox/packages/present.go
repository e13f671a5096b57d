package packages

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// AllowListCopy is the name of the allow-list's copy in the presented
// directory, read by the pip shim inside sandboxes.
const AllowListCopy = "allowed_packages.txt"

// Presented is the state of the presented directory after Present.
type Presented struct {
	Dir string
	// Wheels are the wheels it holds: allowed, and verified against the
	// index's sha256.
	Wheels []Dist
	// Tampered are cached wheels the list allows whose content no longer
	// matches the index; they are kept out (and should be re-added).
	Tampered []string
}

// Present makes the presented directory hold exactly the cached wheels
// the allow-list now allows, each verified against its recorded sha256
// (a wheel that fails is left out and named in Tampered), plus a copy of
// the list. Files are linked in and removed one at a time by rename and
// unlink, so a pip reading the directory meanwhile sees each wheel whole
// or not at all. The directory is bound live into sandboxes, so a
// narrower list takes effect in running sessions too.
//
// When the allow-list cannot be loaded the directory is left as it was
// and the error returned.
func (c *Cache) Present() (Presented, error) {
	list, err := c.list.Load()
	if err != nil {
		return Presented{}, err
	}
	// Hashing is slow: it is done before taking the lock, and remembered,
	// so that under the lock only what changed meanwhile is hashed.
	idx, err := c.readIndex()
	if err != nil {
		return Presented{}, err
	}
	for _, d := range idx.Dists {
		if ok, _ := list.Allows(d.Name, d.Version); ok {
			if err := c.verify(d); err != nil && !errors.Is(err, errTampered) {
				return Presented{}, err
			}
		}
	}
	unlock, err := c.lock()
	if err != nil {
		return Presented{}, err
	}
	defer unlock()
	if idx, err = c.readIndex(); err != nil {
		return Presented{}, err
	}
	dir := c.PresentedDir()
	p := Presented{Dir: dir}
	keep := map[string]bool{AllowListCopy: true}
	for _, d := range idx.Dists {
		if ok, _ := list.Allows(d.Name, d.Version); !ok {
			continue
		}
		err := c.present(d)
		if errors.Is(err, errTampered) {
			p.Tampered = append(p.Tampered, d.Filename)
			continue
		}
		if err != nil {
			return Presented{}, err
		}
		keep[d.Filename] = true
		p.Wheels = append(p.Wheels, d)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Presented{}, fmt.Errorf("package cache: %w", err)
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return Presented{}, fmt.Errorf("package cache: %w", err)
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, AllowListCopy), list.Text(), 0o444); err != nil {
		return Presented{}, fmt.Errorf("package cache: %w", err)
	}
	return p, nil
}

var errTampered = errors.New("content does not match the index")

// verify checks a cached wheel against its recorded sha256 and size,
// skipping the hash when the file's inode, size and mtime are those it
// had when last verified. (The ctime is left out because linking into
// the presented directory changes it; only root can write the cache, and
// the check is against mistakes and corruption, which change the mtime.)
func (c *Cache) verify(d Dist) error {
	path := c.wheelPath(d.Filename)
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing", errTampered, d.Filename)
	}
	if err != nil {
		return fmt.Errorf("package cache: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", errTampered, d.Filename)
	}
	key := keyOf(fi)
	key.ctime = time.Time{}
	c.mu.Lock()
	known := c.verified[d.Filename] == key
	c.mu.Unlock()
	if known {
		return nil
	}
	sum, size, err := hashFile(path)
	if err != nil {
		return fmt.Errorf("package cache: %w", err)
	}
	if sum != d.SHA256 || size != d.Size {
		return fmt.Errorf("%w: %s has sha256 %s, the index %s", errTampered, d.Filename, sum, d.SHA256)
	}
	c.mu.Lock()
	c.verified[d.Filename] = key
	c.mu.Unlock()
	return nil
}

// present verifies a cached wheel and makes sure the presented
// directory has a hard link to it. A new link is made under a temporary
// name and verified there before it is renamed into view.
func (c *Cache) present(d Dist) error {
	src := c.wheelPath(d.Filename)
	dst := filepath.Join(c.PresentedDir(), d.Filename)
	srcInfo, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing", errTampered, d.Filename)
	}
	if err != nil {
		return fmt.Errorf("package cache: %w", err)
	}
	if dstInfo, err := os.Lstat(dst); err == nil && os.SameFile(srcInfo, dstInfo) {
		return c.verify(d)
	}
	tmp := filepath.Join(c.PresentedDir(), ".link-"+d.Filename)
	_ = os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return fmt.Errorf("package cache: %w", err)
	}
	if err := c.verify(d); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("package cache: %w", err)
	}
	return nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
