package packages

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wheelSpec describes a tiny pure-Python wheel for tests.
type wheelSpec struct {
	name, version string
	requires      []string
	// tag defaults to py3-none-any.
	tag string
	// metaName and metaVersion override what METADATA says.
	metaName, metaVersion string
	requiresPython        string
	// omit leaves a file out of the dist-info directory.
	omit string
	// filename overrides the file's name.
	filename string
}

func (w wheelSpec) fileName() string {
	if w.filename != "" {
		return w.filename
	}
	tag := w.tag
	if tag == "" {
		tag = "py3-none-any"
	}
	return fmt.Sprintf("%s-%s-%s.whl", strings.ReplaceAll(w.name, "-", "_"), w.version, tag)
}

// writeWheel writes the wheel into dir and returns its path. The module
// it installs, <name>_mod, records its version in VERSION.
func writeWheel(t *testing.T, dir string, w wheelSpec) string {
	t.Helper()
	p := filepath.Join(dir, w.fileName())
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	zw := zip.NewWriter(f)
	mod := strings.ReplaceAll(w.name, "-", "_") + "_mod"
	info := strings.ReplaceAll(w.name, "-", "_") + "-" + w.version + ".dist-info"
	metaName, metaVersion := w.name, w.version
	if w.metaName != "" {
		metaName = w.metaName
	}
	if w.metaVersion != "" {
		metaVersion = w.metaVersion
	}
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", metaName, metaVersion)
	if w.requiresPython != "" {
		meta += "Requires-Python: " + w.requiresPython + "\n"
	}
	for _, r := range w.requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	meta += "\nA test package.\nName: not-a-header\n"
	files := []struct{ name, body string }{
		{mod + "/__init__.py", fmt.Sprintf("VERSION = %q\n", w.version)},
		{info + "/METADATA", meta},
		{info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: sandboxd-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
		{info + "/top_level.txt", mod + "\n"},
	}
	var record strings.Builder
	for _, fl := range files {
		if strings.HasSuffix(fl.name, "/"+w.omit) {
			continue
		}
		fw, err := zw.Create(fl.name)
		require.NoError(t, err)
		_, err = fw.Write([]byte(fl.body))
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(fl.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", fl.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(fl.body))
	}
	if w.omit != "RECORD" {
		record.WriteString(info + "/RECORD,,\n")
		fw, err := zw.Create(info + "/RECORD")
		require.NoError(t, err)
		_, err = fw.Write([]byte(record.String()))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return p
}

func TestParseWheelName(t *testing.T) {
	tests := []struct {
		in   string
		want WheelName
		ok   bool
	}{
		{"python_pptx-0.6.23-py3-none-any.whl", WheelName{"python_pptx", "0.6.23", "", "py3", "none", "any"}, true},
		{"numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", WheelName{"numpy", "1.26.4", "", "cp311", "cp311", "manylinux_2_17_x86_64.manylinux2014_x86_64"}, true},
		{"pkg-1.0-1build-py2.py3-none-any.whl", WheelName{"pkg", "1.0", "1build", "py2.py3", "none", "any"}, true},
		{"pkg-1.0-build-py3-none-any.whl", WheelName{}, false},
		{"pkg-1.0-py3-none.whl", WheelName{}, false},
		{"pkg-1.0-py3-none-any.tar.gz", WheelName{}, false},
		{"pkg-notaversion-py3-none-any.whl", WheelName{}, false},
		{"-1.0-py3-none-any.whl", WheelName{}, false},
		{"pkg-1.0-py3--any.whl", WheelName{}, false},
		{"../pkg-1.0-py3-none-any.whl", WheelName{}, false},
	}
	for _, tt := range tests {
		got, err := ParseWheelName(tt.in)
		if !tt.ok {
			assert.ErrorIs(t, err, ErrBadWheel, "%q must be refused", tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
	w, err := ParseWheelName("pkg-1.0-py2.py3-none-any.whl")
	require.NoError(t, err)
	assert.Equal(t, []string{"py2-none-any", "py3-none-any"}, w.Tags(), "compressed tag sets expand")
}

func TestInspectWheel(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		desc string
		spec wheelSpec
		want string // error text; empty when valid
	}{
		{"valid", wheelSpec{name: "alpha", version: "1.0", requires: []string{"beta>=1.0", `gamma; extra == "x"`}, requiresPython: ">=3.8"}, ""},
		{"name normalised across file, dist-info and METADATA", wheelSpec{name: "Foo.Bar", version: "2.0", filename: "foo_bar-2.0-py3-none-any.whl"}, ""},
		{"METADATA names another project", wheelSpec{name: "alpha", version: "1.0", metaName: "omega"}, `METADATA names "omega"`},
		{"METADATA has another version", wheelSpec{name: "alpha", version: "1.0", metaVersion: "1.1"}, `METADATA has version "1.1"`},
		{"no METADATA", wheelSpec{name: "alpha", version: "1.0", omit: "METADATA"}, "no .dist-info/METADATA"},
		{"no WHEEL", wheelSpec{name: "alpha", version: "1.0", omit: "WHEEL"}, "no alpha-1.0.dist-info/WHEEL"},
		{"no RECORD", wheelSpec{name: "alpha", version: "1.0", omit: "RECORD"}, "has no RECORD"},
		{"dist-info of another version", wheelSpec{name: "alpha", version: "1.0", filename: "alpha-3.0-py3-none-any.whl"}, "does not match the file name"},
		{"unreadable Requires-Dist", wheelSpec{name: "alpha", version: "1.0", requires: []string{"beta @ https://x/beta.whl"}}, "Requires-Dist"},
	}
	for _, tt := range tests {
		sub := filepath.Join(dir, strings.ReplaceAll(tt.desc, " ", "_"))
		require.NoError(t, os.Mkdir(sub, 0o755))
		p := writeWheel(t, sub, tt.spec)
		d, err := inspectWheel(p, filepath.Base(p))
		if tt.want != "" {
			assert.ErrorIs(t, err, ErrBadWheel, tt.desc)
			assert.ErrorContains(t, err, tt.want, tt.desc)
			continue
		}
		require.NoError(t, err, tt.desc)
		assert.Equal(t, tt.spec.version, d.Version, tt.desc)
		assert.Equal(t, tt.spec.requires, d.RequiresDist, tt.desc)
		assert.Equal(t, tt.spec.requiresPython, d.RequiresPython, tt.desc)
	}
	notZip := filepath.Join(dir, "junk-1.0-py3-none-any.whl")
	require.NoError(t, os.WriteFile(notZip, []byte("not a zip"), 0o644))
	_, err := inspectWheel(notZip, filepath.Base(notZip))
	assert.ErrorIs(t, err, ErrBadWheel, "a file that is no zip is refused")
}
