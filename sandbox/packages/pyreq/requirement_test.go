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

func TestParseRequirement(t *testing.T) {
	tests := []struct {
		in     string
		key    string
		extras []string
		spec   string
		marker string
		ok     bool
	}{
		{in: "pandas", key: "pandas", ok: true},
		{in: "pandas>=2.0.0,<3.0.0", key: "pandas", spec: ">=2.0.0,<3.0.0", ok: true},
		{in: "Python_PPTX >= 0.6", key: "python-pptx", spec: ">=0.6", ok: true},
		{in: "requests[Socks, security]>=2.31", key: "requests", extras: []string{"security", "socks"}, spec: ">=2.31", ok: true},
		{in: "lxml (>=3.1.0)", key: "lxml", spec: ">=3.1.0", ok: true},
		{in: `PySocks!=1.5.7,>=1.5.6; extra == "socks"`, key: "pysocks", spec: "!=1.5.7,>=1.5.6", marker: `extra == "socks"`, ok: true},
		{in: `tzdata>=2022.1 ; python_version >= "3.9"`, key: "tzdata", spec: ">=2022.1", marker: `python_version >= "3.9"`, ok: true},
		{in: "x[]", key: "x", ok: true},
		{in: "pkg @ https://example.com/pkg.whl", ok: false},
		{in: "", ok: false},
		{in: "-r other.txt", ok: false},
		{in: "pandas>=>2", ok: false},
		{in: "pandas 2.0", ok: false},
		{in: "pandas[", ok: false},
		{in: "pandas[a b]", ok: false},
		{in: "pandas (>=2", ok: false},
		{in: "pandas; nonsense", ok: false},
		{in: "pandas>=2 extra", ok: false},
		{in: strings.Repeat("a", MaxRequirementLength+1), ok: false},
	}
	for _, tt := range tests {
		r, err := ParseRequirement(tt.in)
		if !tt.ok {
			assert.ErrorIs(t, err, ErrRequirement, "%q must be refused", tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.key, r.Key(), "key of %q", tt.in)
		assert.Equal(t, tt.extras, r.Extras, "extras of %q", tt.in)
		assert.Equal(t, tt.spec, r.Specifier.String(), "specifier of %q", tt.in)
		if tt.marker == "" {
			assert.Nil(t, r.Marker, "%q has no marker", tt.in)
		} else if assert.NotNil(t, r.Marker, "%q has a marker", tt.in) {
			assert.Equal(t, tt.marker, r.Marker.String())
		}
	}
}

var linuxPy311 = Environment{
	"implementation_name":            "cpython",
	"implementation_version":         "3.11.2",
	"os_name":                        "posix",
	"platform_machine":               "x86_64",
	"platform_python_implementation": "CPython",
	"platform_release":               "6.18.0-1-amd64",
	"platform_system":                "Linux",
	"platform_version":               "#1 SMP PREEMPT_DYNAMIC Debian 6.18.1-1",
	"python_full_version":            "3.11.2",
	"python_version":                 "3.11",
	"sys_platform":                   "linux",
}

// markerCases are checked against this package and, when the host has
// it, against pip's own copy of packaging.
var markerCases = []struct {
	marker string
	extra  string
	want   bool
}{
	{`python_version >= "3.9"`, "", true},
	{`python_version < "3.8"`, "", false},
	{`python_version > "3.10"`, "", true}, // version, not string, order
	{`python_full_version >= "3.11.1"`, "", true},
	{`"3.8" < python_version`, "", true},
	{`sys_platform == "win32"`, "", false},
	{`sys_platform != "win32"`, "", true},
	{`platform_system == "Linux" and platform_machine == "x86_64"`, "", true},
	{`os_name == "nt" or python_version >= "3"`, "", true},
	{`(os_name == "nt" or os_name == "java") and python_version >= "3"`, "", false},
	{`'linux' in sys_platform`, "", true},
	{`"arm" not in platform_machine`, "", true},
	{`extra == "socks"`, "socks", true},
	{`extra == "socks"`, "", false},
	{`extra == "Socks_Extra"`, "socks-extra", true},
	{`platform_python_implementation == 'CPython' and python_version < '3.12'`, "", true},
	{`implementation_name == "pypy"`, "", false},
	{`python_version ~= "3.10"`, "", true},
	{`python_version == "3.*"`, "", true},
	{`sys.platform == "linux"`, "", true},
}

func TestMarkerEvaluate(t *testing.T) {
	// A side that is no version compares as a string, as newer packaging
	// does (packaging 23.0 raises instead, so this case is not in the
	// reference comparison).
	cases := append(markerCases, struct {
		marker string
		extra  string
		want   bool
	}{`platform_release >= "5"`, "", true})
	for _, tt := range cases {
		m, err := ParseMarker(tt.marker)
		require.NoError(t, err, tt.marker)
		got, err := m.Evaluate(linuxPy311.WithExtra(tt.extra))
		require.NoError(t, err, tt.marker)
		assert.Equal(t, tt.want, got, "%s with extra %q", tt.marker, tt.extra)
	}
}

func TestMarkerRefused(t *testing.T) {
	for _, bad := range []string{
		``, `python_version`, `python_version >=`, `python_version >= "3`, `foo == "1"`,
		`"a" == "b"`, `python_version => "3"`, `python_version not "3"`, `(python_version > "3"`,
		`python_version > "3")`, `python_version > "3" and`, `python_version > "3" xor os_name == "x"`,
		strings.Repeat("(", 100) + `os_name == "x"` + strings.Repeat(")", 100),
		`os_name == "x" $`,
	} {
		_, err := ParseMarker(bad)
		assert.ErrorIs(t, err, ErrMarker, "%q must be refused", bad)
	}
}

func TestMarkerUndefinedVariable(t *testing.T) {
	m, err := ParseMarker(`extra == "x"`)
	require.NoError(t, err)
	_, err = m.Evaluate(Environment{})
	assert.ErrorIs(t, err, ErrMarker, "extra is undefined outside WithExtra")
}

func TestRequirementApplies(t *testing.T) {
	r, err := ParseRequirement(`PySocks>=1.5.6; extra == "socks"`)
	require.NoError(t, err)
	ok, err := r.Applies(linuxPy311, nil)
	require.NoError(t, err)
	assert.False(t, ok, "an extra's dependency is left out without the extra")
	ok, err = r.Applies(linuxPy311, []string{"security", "socks"})
	require.NoError(t, err)
	assert.True(t, ok, "an extra's dependency applies with the extra")
}

// TestMarkerMatchesPackaging evaluates every case with the packaging copy
// pip carries, so this evaluator is held to the reference, not to itself.
func TestMarkerMatchesPackaging(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3 to compare with")
	}
	type pyCase struct {
		Marker string      `json:"marker"`
		Env    Environment `json:"env"`
	}
	var cases []pyCase
	for _, tt := range markerCases {
		cases = append(cases, pyCase{tt.marker, linuxPy311.WithExtra(tt.extra)})
	}
	in, err := json.Marshal(cases)
	require.NoError(t, err)
	cmd := exec.Command(python, "-c", `
import json, sys
try:
    from packaging.markers import Marker
except ImportError:
    from pip._vendor.packaging.markers import Marker
print(json.dumps([Marker(c["marker"]).evaluate(c["env"]) for c in json.load(sys.stdin)]))
`)
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("no packaging module to compare with: %v", err)
	}
	var want []bool
	require.NoError(t, json.Unmarshal(out, &want), string(out))
	require.Len(t, want, len(markerCases))
	for i, tt := range markerCases {
		assert.Equal(t, want[i], tt.want, "packaging's answer for %s (extra %q)", tt.marker, tt.extra)
	}
}
