package envs

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testProbe() Probe {
	return Probe{
		Python:  "3.11.2",
		Markers: pyreq.Environment{"python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux"},
		Tags:    []string{"cp311-cp311-linux_x86_64", "py3-none-any"},
		Packages: map[string]Package{
			"numpy":       {Name: "numpy", Version: "1.24.2"},
			"pandas":      {Name: "pandas", Version: "1.5.3"},
			"python-pptx": {Name: "python-pptx", Version: "0.6.23"},
		},
	}
}

func TestNewManifest(t *testing.T) {
	m, err := NewManifest("20250301T120000Z-0a1b2c3d", t0, []string{"numpy", "pandas>=2", "Python_PPTX", "reportlab"}, testProbe(),
		map[string]string{"reportlab": "from the package cache: reportlab is not on the package allow-list"})
	require.NoError(t, err)
	assert.Equal(t, []Package{{"numpy", "1.24.2"}, {"python-pptx", "0.6.23"}}, m.Present)
	assert.Equal(t, []Missing{
		{Requirement: "pandas>=2", Found: "1.5.3", Reason: "version 1.5.3 does not satisfy pandas>=2"},
		{Requirement: "reportlab", Reason: "not installed; from the package cache: reportlab is not on the package allow-list"},
	}, m.Missing)

	_, err = NewManifest("../x", t0, nil, testProbe(), nil)
	assert.Error(t, err, "an id that is no version id is refused")
	_, err = NewManifest("20250301T120000Z-0a1b2c3d", t0, []string{"bad=="}, testProbe(), nil)
	assert.ErrorIs(t, err, pyreq.ErrRequirement)
}

func TestManifestRoundTrip(t *testing.T) {
	m, err := NewManifest("20250301T120000Z-0a1b2c3d", t0, DefaultDeclared(), testProbe(), nil)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "m.json")
	require.NoError(t, WriteManifest(p, m))
	got, err := ReadManifest(p)
	require.NoError(t, err)
	assert.Equal(t, m, got)

	require.NoError(t, os.WriteFile(p, []byte(`{"id": "../../etc"}`), 0o644))
	_, err = ReadManifest(p)
	assert.ErrorIs(t, err, ErrManifest, "a manifest naming no valid id is refused")
	require.NoError(t, os.WriteFile(p, []byte(`{`), 0o644))
	_, err = ReadManifest(p)
	assert.ErrorIs(t, err, ErrManifest)
}

// commit builds and commits an (empty) env created at the given time.
func commit(t *testing.T, s Store, at time.Time) string {
	t.Helper()
	id, err := s.NewBuild(at)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.BuildDir(id), "pyvenv.cfg"), []byte("x"), 0o644))
	m, err := NewManifest(id, at, nil, testProbe(), nil)
	require.NoError(t, err)
	require.NoError(t, s.Commit(m))
	return id
}

func TestStoreVersionsAndGC(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "envs"))
	_, err := s.Newest()
	require.ErrorIs(t, err, ErrNoEnv)

	oldest := commit(t, s, t0)
	middle := commit(t, s, t0.Add(time.Hour))
	newest := commit(t, s, t0.Add(2*time.Hour))
	assert.DirExists(t, s.Dir(newest))
	assert.NoDirExists(t, s.BuildDir(newest), "commit moves the build directory")
	// The pre-versioning base env is none of the store's business.
	require.NoError(t, os.Mkdir(filepath.Join(filepath.Dir(s.Dir(newest)), "base"), 0o755))

	vs, err := s.Versions()
	require.NoError(t, err)
	require.Len(t, vs, 3)
	assert.Equal(t, []string{oldest, middle, newest}, []string{vs[0].ID, vs[1].ID, vs[2].ID}, "oldest first")
	n, err := s.Newest()
	require.NoError(t, err)
	assert.Equal(t, newest, n.ID)

	removed, err := s.GC(map[string]bool{oldest: true})
	require.NoError(t, err)
	assert.Equal(t, []string{middle}, removed, "GC keeps what is in use and the newest")
	assert.NoDirExists(t, s.Dir(middle))
	assert.NoFileExists(t, s.manifestPath(middle))
	assert.DirExists(t, s.Dir(oldest))

	removed, err = s.GC(nil)
	require.NoError(t, err)
	assert.Equal(t, []string{oldest}, removed, "once unused, the old env goes")
	removed, err = s.GC(nil)
	require.NoError(t, err)
	assert.Empty(t, removed, "the newest env is never collected")
	assert.DirExists(t, s.Dir(newest))
	assert.DirExists(t, filepath.Join(filepath.Dir(s.Dir(newest)), "base"), "unknown entries are left alone")
}

func TestStoreUnreadableManifest(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "envs"))
	good := commit(t, s, t0)
	bad := commit(t, s, t0.Add(time.Hour))
	require.NoError(t, os.WriteFile(s.manifestPath(bad), []byte("{"), 0o644))

	vs, err := s.Versions()
	assert.ErrorIs(t, err, ErrManifest, "the unreadable manifest is reported")
	require.Len(t, vs, 1, "the readable versions are still listed")
	assert.Equal(t, good, vs[0].ID)

	_, err = s.GC(nil)
	assert.Error(t, err, "GC removes nothing while it cannot tell what exists")
	assert.DirExists(t, s.Dir(good))
}

func TestStoreRemoveStale(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "envs")
	s := NewStore(dir)
	kept := commit(t, s, t0)
	building, err := s.NewBuild(t0.Add(time.Hour))
	require.NoError(t, err)
	orphan := commit(t, s, t0.Add(2*time.Hour))
	require.NoError(t, os.Remove(s.manifestPath(orphan))) // a removal that died half-way
	require.NoError(t, os.Mkdir(filepath.Join(dir, "base"), 0o755))

	require.NoError(t, s.RemoveStale())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	assert.Equal(t, []string{kept, kept + ".json", "base"}, names, "build %s and orphan %s are removed", building, orphan)
}

func TestNewID(t *testing.T) {
	a, err := NewID(t0)
	require.NoError(t, err)
	b, err := NewID(t0)
	require.NoError(t, err)
	assert.True(t, ValidID(a), a)
	assert.NotEqual(t, a, b, "ids made in the same second differ")
	assert.Regexp(t, `^20250301T120000Z-`, a)
	for _, bad := range []string{"", "base", "../20250301T120000Z-0a1b2c3d", "20250301T120000Z-0a1b2c3d/..", ".build-20250301T120000Z-0a1b2c3d"} {
		assert.False(t, ValidID(bad), bad)
	}
}
