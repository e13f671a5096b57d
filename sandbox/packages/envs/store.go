package envs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// The envs directory holds:
//
//	<id>/          a built venv, never changed after Commit
//	<id>.json      its manifest; written last, so it marks a complete env
//	.build-<id>/   an env being built (or left by a build that died)
//
// Other entries (such as the pre-versioning "base") are left alone.
const buildPrefix = ".build-"

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// ValidID says whether id has the form NewID makes; only such ids are
// ever joined into paths.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// NewID returns a new version id: the UTC time (so ids sort by age) and
// a random suffix.
func NewID(now time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("env id: %w", err)
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

// ErrNoEnv is returned by Newest when no env has been committed.
var ErrNoEnv = errors.New("no base environment has been built")

// Store is the envs directory. Builds, Commit and GC of one Store must be
// serialised by the caller (one daemon owns it); reading is always safe.
type Store struct{ dir string }

// NewStore returns the store at dir (the state's envs/).
func NewStore(dir string) Store { return Store{dir: dir} }

// Dir is where version id's venv lives (the overlay's lower layer).
func (s Store) Dir(id string) string { return filepath.Join(s.dir, id) }

func (s Store) manifestPath(id string) string { return filepath.Join(s.dir, id+".json") }

// BuildDir is where version id is built (bound rw at /opt/venv in the
// build sandbox).
func (s Store) BuildDir(id string) string { return filepath.Join(s.dir, buildPrefix+id) }

// NewBuild makes a fresh build directory (0755, owned by the caller, who
// chowns it to the sandbox user) and returns its version id.
func (s Store) NewBuild(now time.Time) (string, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return "", fmt.Errorf("env: %w", err)
	}
	id, err := NewID(now)
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(s.BuildDir(id), 0o755); err != nil {
		return "", fmt.Errorf("env: %w", err)
	}
	return id, nil
}

// Commit makes the built env m.ID a version: its build directory is
// renamed to Dir(m.ID), then the manifest is written. From then on
// nothing changes it until GC removes it.
func (s Store) Commit(m Manifest) error {
	if !ValidID(m.ID) {
		return fmt.Errorf("env: invalid version id %q", m.ID)
	}
	fi, err := os.Lstat(s.BuildDir(m.ID))
	if err != nil {
		return fmt.Errorf("env %s: %w", m.ID, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("env %s: %s is not a directory", m.ID, s.BuildDir(m.ID))
	}
	if err := os.Rename(s.BuildDir(m.ID), s.Dir(m.ID)); err != nil {
		return fmt.Errorf("env %s: %w", m.ID, err)
	}
	return WriteManifest(s.manifestPath(m.ID), m)
}

// Versions returns the committed envs, oldest first. A manifest that
// cannot be read, or whose directory is gone, is skipped with its error
// joined into the returned error (the readable ones are still returned).
func (s Store) Versions() ([]Manifest, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("envs: %w", err)
	}
	var out []Manifest
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidID(id) {
			continue
		}
		m, err := ReadManifest(s.manifestPath(id))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.ID != id {
			errs = append(errs, fmt.Errorf("%w: %s names version %s", ErrManifest, s.manifestPath(id), m.ID))
			continue
		}
		if fi, err := os.Lstat(s.Dir(id)); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("env %s: its directory is missing", id))
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, errors.Join(errs...)
}

// Manifest reads the manifest of version id.
func (s Store) Manifest(id string) (Manifest, error) {
	if !ValidID(id) {
		return Manifest{}, fmt.Errorf("env: invalid version id %q", id)
	}
	m, err := ReadManifest(s.manifestPath(id))
	if err != nil {
		return Manifest{}, err
	}
	if m.ID != id {
		return Manifest{}, fmt.Errorf("%w: %s names version %s", ErrManifest, s.manifestPath(id), m.ID)
	}
	return m, nil
}

// Newest is the env new sessions get.
func (s Store) Newest() (Manifest, error) {
	vs, err := s.Versions()
	if len(vs) == 0 {
		if err != nil {
			return Manifest{}, err
		}
		return Manifest{}, ErrNoEnv
	}
	return vs[len(vs)-1], nil
}

// GC removes every committed env except the newest and those in inUse
// (version ids of the envs live sessions overlay), and returns the ids
// it removed. The manifest goes first, so an interrupted removal leaves
// a directory no one will pick (RemoveStale clears it).
func (s Store) GC(inUse map[string]bool) ([]string, error) {
	vs, err := s.Versions()
	if err != nil {
		return nil, fmt.Errorf("envs: not collecting while a manifest is unreadable: %w", err)
	}
	var removed []string
	for i, m := range vs {
		if i == len(vs)-1 || inUse[m.ID] {
			continue
		}
		if err := os.Remove(s.manifestPath(m.ID)); err != nil {
			return removed, fmt.Errorf("env %s: %w", m.ID, err)
		}
		if err := os.RemoveAll(s.Dir(m.ID)); err != nil {
			return removed, fmt.Errorf("env %s: %w", m.ID, err)
		}
		removed = append(removed, m.ID)
	}
	return removed, nil
}

// RemoveStale removes build directories and version directories without
// a manifest: what builds and removals that died left. Call it only when
// no build runs (at daemon start).
func (s Store) RemoveStale() error {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("envs: %w", err)
	}
	var errs []error
	for _, e := range entries {
		id, building := strings.CutPrefix(e.Name(), buildPrefix)
		if !ValidID(id) {
			continue
		}
		if !building {
			if _, err := os.Lstat(s.manifestPath(id)); err == nil || !errors.Is(err, os.ErrNotExist) {
				continue
			}
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("env %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}
