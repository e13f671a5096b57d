package packages

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// designList is the design's default allow-list, as sandboxd writes it.
const designList = `# One requirement per line; installs of anything else are refused.
pandas>=2.0.0,<3.0.0
numpy>=1.24.0,<2.0.0
reportlab>=4.0.0
python-pptx>=0.6.0
openpyxl>=3.1.0
matplotlib>=3.7.0
requests>=2.31.0
`

func TestParseAllowListGood(t *testing.T) {
	l, err := ParseAllowList([]byte(designList + `
Zope.Interface            # any version
compat ~= 1.4.2   # inline comment
wild==1.*
notfive!=5.0,>=4
pre>=2.0b1
`))
	require.NoError(t, err)
	assert.Equal(t, []string{"compat", "matplotlib", "notfive", "numpy", "openpyxl", "pandas", "pre", "python-pptx", "reportlab", "requests", "wild", "zope-interface"}, l.Names())
	assert.True(t, l.Listed("Python_PPTX"), "names are compared normalised")
	assert.False(t, l.Listed("tensorflow"))
}

func TestParseAllowListBad(t *testing.T) {
	tests := []struct {
		text string
		line int
		want string
	}{
		{"pandas\nnumpy>=>1\n", 2, `line 2: "numpy>=>1"`},
		{"# c\n\npandas 2.0\n", 3, `line 3: "pandas 2.0"`},
		{"pandas\nPandas>=2\n", 2, "already listed on line 1"},
		{"pandas\npython_pptx\npython-pptx>=1\n", 3, "already listed on line 2"},
		{"requests[socks]\n", 1, "extras have no meaning"},
		{"requests; python_version > '3'\n", 1, "markers are not supported"},
		{"-r other.txt\n", 1, "options are not supported"},
		{"--index-url https://x\n", 1, "options are not supported"},
		{"pkg @ https://example.com/pkg.whl\n", 1, "direct references"},
		{"x\ny=1.0\n", 2, `line 2: "y=1.0"`},
		{"x>=1 || <0.5\n", 1, "line 1"},
	}
	for _, tt := range tests {
		_, err := ParseAllowList([]byte(tt.text))
		require.ErrorIs(t, err, ErrAllowList, "%q must be refused", tt.text)
		var le *LineError
		require.ErrorAs(t, err, &le, tt.text)
		assert.Equal(t, tt.line, le.Line, "line number for %q", tt.text)
		assert.ErrorContains(t, err, tt.want, tt.text)
	}
}

func TestAllows(t *testing.T) {
	l, err := ParseAllowList([]byte(designList + "compat~=1.4.2\nwild==1.*\nnotfive!=5.0,>=4\nany-version\npre>=2.0b1\n"))
	require.NoError(t, err)
	tests := []struct {
		name, version string
		ok            bool
		reason        string
	}{
		{"pandas", "2.1.4", true, "allowed: the allow-list's line 2 says pandas>=2.0.0,<3.0.0"},
		{"pandas", "1.5.3", false, "pandas 1.5.3 is not allowed: the allow-list's line 2 says pandas>=2.0.0,<3.0.0"},
		{"pandas", "3.0.0", false, "not allowed"},
		{"pandas", "2.5.0rc1", false, "is a pre-release"},
		{"Python_PPTX", "0.6.23", true, "line 5"},
		{"tensorflow", "2.0", false, "tensorflow is not on the package allow-list"},
		{"compat", "1.4.9", true, ""},
		{"compat", "1.5.0", false, ""},
		{"wild", "1.99", true, ""},
		{"wild", "2.0", false, ""},
		{"notfive", "5.0.0", false, ""},
		{"notfive", "5.1", true, ""},
		{"any_version", "0.0.1", true, ""},
		{"any-version", "1.0a1", false, "pre-release"},
		{"pre", "2.0b2", true, ""},
		{"pandas", "not-a-version", false, "not a PEP 440 version"},
	}
	for _, tt := range tests {
		ok, reason := l.Allows(tt.name, tt.version)
		assert.Equal(t, tt.ok, ok, "%s %s: %s", tt.name, tt.version, reason)
		assert.Contains(t, reason, tt.reason, "%s %s", tt.name, tt.version)
	}
}

func TestAllowFileReloads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "allowed_packages.txt")
	f := NewAllowFile(p)
	_, err := f.Load()
	require.ErrorIs(t, err, os.ErrNotExist, "a missing list allows nothing")

	require.NoError(t, os.WriteFile(p, []byte("alpha\n"), 0o644))
	l, err := f.Load()
	require.NoError(t, err)
	assert.True(t, l.Listed("alpha"))
	again, err := f.Load()
	require.NoError(t, err)
	assert.Same(t, l, again, "an unchanged file is not parsed again")

	// Same size, same mtime: the inode of a replaced file still tells.
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p+".new", []byte("gamma\n"), 0o644))
	require.NoError(t, os.Chtimes(p+".new", st.ModTime(), st.ModTime()))
	require.NoError(t, os.Rename(p+".new", p))
	l, err = f.Load()
	require.NoError(t, err)
	assert.True(t, l.Listed("gamma"), "a replaced file is read again")
	assert.False(t, l.Listed("alpha"))

	// Rewritten in place with its old mtime: the size tells (and the
	// ctime, at the file system's timestamp granularity).
	require.NoError(t, os.WriteFile(p, []byte("delta2\n"), 0o644))
	require.NoError(t, os.Chtimes(p, st.ModTime(), st.ModTime()))
	l, err = f.Load()
	require.NoError(t, err)
	assert.True(t, l.Listed("delta2"), "a file rewritten in place with its old mtime is read again")

	require.NoError(t, os.WriteFile(p, []byte("delta2\nbad line here\n"), 0o644))
	_, err = f.Load()
	require.ErrorIs(t, err, ErrAllowList, "a bad list is an error, not the last good one")
	assert.ErrorContains(t, err, `line 2: "bad line here"`)
	assert.ErrorContains(t, err, p, "the error names the file")

	require.NoError(t, os.WriteFile(p, []byte("epsilon\n"), 0o644))
	require.NoError(t, os.Chtimes(p, time.Now(), time.Now()))
	l, err = f.Load()
	require.NoError(t, err, "a fixed list is read again")
	assert.True(t, l.Listed("epsilon"))
}
