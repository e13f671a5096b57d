package pyreq

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSpecifier(t *testing.T) {
	tests := []struct {
		in, canon string
		ok        bool
	}{
		{"", "", true},
		{">=2.0.0,<3.0.0", ">=2.0.0,<3.0.0", true},
		{" >= 2.0.0 , < 3.0.0 ", ">=2.0.0,<3.0.0", true},
		{"~=1.4.2", "~=1.4.2", true},
		{"==1.*", "==1.*", true},
		{"!=1.5", "!=1.5", true},
		{"===1.0", "===1.0", true},
		{"===foo", "", false}, // the library takes only versions after ===
		{"==2.0b1", "==2.0b1", true},
		{"1.0", "", false},           // bare version: the library accepts it, PEP 440 does not
		{"=1.0", "", false},          // "=" is not an operator
		{">=1.0 || <0.5", "", false}, // "||" is not PEP 440
		{"=>1.0", "", false},
		{">=1.0,", "", false},
		{",>=1.0", "", false},
		{"~=1", "", false},     // ~= needs two release segments
		{">=1.0.*", "", false}, // wildcards only with == and !=
		{"~=1.0.*", "", false},
		{">=abc", "", false},
		{"==1.0+local.*", "", false},
		{"<1.0+local", "", false},
		{">=1.0; x", "", false},
	}
	for _, tt := range tests {
		s, err := ParseSpecifier(tt.in)
		if !tt.ok {
			assert.ErrorIs(t, err, ErrSpecifier, "%q must be refused", tt.in)
			continue
		}
		if assert.NoError(t, err, "%q is a valid specifier", tt.in) {
			assert.Equal(t, tt.canon, s.String(), "canonical form of %q", tt.in)
		}
	}
}

var specifierCases = []struct {
	spec, version string
	want          bool
}{
	{">=2.0.0,<3.0.0", "2.0.0", true},
	{">=2.0.0,<3.0.0", "2.5", true},
	{">=2.0.0,<3.0.0", "3.0", false},
	{">=2.0.0,<3.0.0", "1.9.9", false},
	{">=2.0.0,<3.0.0", "3.0.0a1", false},  // pre-release of the excluded bound
	{">=2.0.0,<3.0.0", "2.5.0rc1", false}, // pre-releases need a clause naming one
	{">=2.0.0rc1", "2.5.0rc1", true},
	{"~=1.4", "1.9", true},
	{"~=1.4", "2.0", false},
	{"~=1.4.2", "1.4.5", true},
	{"~=1.4.2", "1.5", false},
	{"==1.*", "1.9.3", true},
	{"==1.*", "2.0", false},
	{"!=1.5", "1.5.0", false},
	{"!=1.5", "1.6", true},
	{"==1.0", "1.0.0", true},
	{"==1.0", "1.0+local", true},
	{">1.0", "1.0.post1", false},
	{">=1.0", "1.0.post1", true},
	{"", "7.0", true},
	{"", "7.0b1", false},
	{"===1.0", "1.0", true},
	{"<2", "2.0.dev1", false},
	{">=1!0.1", "2.0", false}, // epochs order first
	{">=1.9", "1.10", true},   // numeric, not lexical
}

func TestSpecifierContains(t *testing.T) {
	for _, tt := range specifierCases {
		s, err := ParseSpecifier(tt.spec)
		require.NoError(t, err, tt.spec)
		v, err := ParseVersion(tt.version)
		require.NoError(t, err, tt.version)
		assert.Equal(t, tt.want, s.Contains(v), "%q contains %q", tt.spec, tt.version)
	}
}

func TestSpecifierPin(t *testing.T) {
	for spec, want := range map[string]string{"==1.2": "1.2", "==1.*": "", ">=1": "", "==1,!=2": "", "===1": "", "": ""} {
		s, err := ParseSpecifier(spec)
		require.NoError(t, err, spec)
		got, ok := s.Pin()
		assert.Equal(t, want, got, "pin of %q", spec)
		assert.Equal(t, want != "", ok, "pin of %q", spec)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Python-PPTX":        "python-pptx",
		"python_pptx":        "python-pptx",
		"python.pptx":        "python-pptx",
		"Python__-.PPTX":     "python-pptx",
		"zope.interface":     "zope-interface",
		"charset_normalizer": "charset-normalizer",
		"numpy":              "numpy",
	} {
		assert.Equal(t, want, Normalize(in), "normalised %q", in)
	}
	for name, ok := range map[string]bool{"a": true, "a.b-c_d": true, "9x": true, "-a": false, "a-": false, "": false, "a b": false, "é": false} {
		assert.Equal(t, ok, ValidName(name), "ValidName(%q)", name)
	}
}

// TestSpecifierMatchesPackaging holds TestSpecifierContains's cases to
// packaging's SpecifierSet.contains, the reference pip uses.
func TestSpecifierMatchesPackaging(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3 to compare with")
	}
	var pairs [][2]string
	for _, tt := range specifierCases {
		pairs = append(pairs, [2]string{tt.spec, tt.version})
	}
	in, err := json.Marshal(pairs)
	require.NoError(t, err)
	cmd := exec.Command(python, "-c", `
import json, sys
try:
    from packaging.specifiers import SpecifierSet
except ImportError:
    from pip._vendor.packaging.specifiers import SpecifierSet
print(json.dumps([SpecifierSet(s).contains(v) for s, v in json.load(sys.stdin)]))
`)
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("no packaging module to compare with: %v", err)
	}
	var want []bool
	require.NoError(t, json.Unmarshal(out, &want), string(out))
	require.Len(t, want, len(specifierCases))
	for i, tt := range specifierCases {
		assert.Equal(t, want[i], tt.want, "packaging's answer for %q contains %q", tt.spec, tt.version)
	}
}

// FuzzParseRequirement: no input may panic the parser, the specifier
// check or the marker evaluator (requirements come from API callers).
func FuzzParseRequirement(f *testing.F) {
	for _, s := range []string{"pandas>=2.0.0,<3.0.0", `a[b]~=1.4; python_version >= "3" and (extra == 'x' or os_name != "nt")`, "x===1.0", "y==1.*", "z!=1.0+abc"} {
		f.Add(s, "1.0")
	}
	f.Fuzz(func(t *testing.T, req, version string) {
		r, err := ParseRequirement(req)
		if err != nil {
			return
		}
		if v, err := ParseVersion(version); err == nil {
			r.Specifier.Contains(v)
		}
		_, _ = r.Applies(linuxPy311, []string{"x"})
	})
}
