package packages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"
)

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
		spec wheeltest.Spec
		want string // error text; empty when valid
	}{
		{"valid", wheeltest.Spec{Name: "alpha", Version: "1.0", Requires: []string{"beta>=1.0", `gamma; extra == "x"`}, RequiresPython: ">=3.8"}, ""},
		{"name normalised across file, dist-info and METADATA", wheeltest.Spec{Name: "Foo.Bar", Version: "2.0", Filename: "foo_bar-2.0-py3-none-any.whl"}, ""},
		{"METADATA names another project", wheeltest.Spec{Name: "alpha", Version: "1.0", MetaName: "omega"}, `METADATA names "omega"`},
		{"METADATA has another version", wheeltest.Spec{Name: "alpha", Version: "1.0", MetaVersion: "1.1"}, `METADATA has version "1.1"`},
		{"no METADATA", wheeltest.Spec{Name: "alpha", Version: "1.0", Omit: "METADATA"}, "no .dist-info/METADATA"},
		{"no WHEEL", wheeltest.Spec{Name: "alpha", Version: "1.0", Omit: "WHEEL"}, "no alpha-1.0.dist-info/WHEEL"},
		{"no RECORD", wheeltest.Spec{Name: "alpha", Version: "1.0", Omit: "RECORD"}, "has no RECORD"},
		{"dist-info of another version", wheeltest.Spec{Name: "alpha", Version: "1.0", Filename: "alpha-3.0-py3-none-any.whl"}, "does not match the file name"},
		{"METADATA too large to read", wheeltest.Spec{Name: "alpha", Version: "1.0", Description: strings.Repeat("x", maxMetadataSize)}, "METADATA is larger than"},
		{"unreadable Requires-Dist", wheeltest.Spec{Name: "alpha", Version: "1.0", Requires: []string{"beta @ https://x/beta.whl"}}, "Requires-Dist"},
	}
	for _, tt := range tests {
		sub := filepath.Join(dir, strings.ReplaceAll(tt.desc, " ", "_"))
		require.NoError(t, os.Mkdir(sub, 0o755))
		p := wheeltest.Write(t, sub, tt.spec)
		d, err := inspectWheel(p, filepath.Base(p))
		if tt.want != "" {
			assert.ErrorIs(t, err, ErrBadWheel, tt.desc)
			assert.ErrorContains(t, err, tt.want, tt.desc)
			continue
		}
		require.NoError(t, err, tt.desc)
		assert.Equal(t, tt.spec.Version, d.Version, tt.desc)
		assert.Equal(t, tt.spec.Requires, d.RequiresDist, tt.desc)
		assert.Equal(t, tt.spec.RequiresPython, d.RequiresPython, tt.desc)
	}
	notZip := filepath.Join(dir, "junk-1.0-py3-none-any.whl")
	require.NoError(t, os.WriteFile(notZip, []byte("not a zip"), 0o644))
	_, err := inspectWheel(notZip, filepath.Base(notZip))
	assert.ErrorIs(t, err, ErrBadWheel, "a file that is no zip is refused")
}
