package packages

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"

	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

var py311 = pyreq.Environment{
	"implementation_name":            "cpython",
	"implementation_version":         "3.11.2",
	"os_name":                        "posix",
	"platform_machine":               "x86_64",
	"platform_python_implementation": "CPython",
	"platform_release":               "6.18.0",
	"platform_system":                "Linux",
	"platform_version":               "#1 SMP",
	"python_full_version":            "3.11.2",
	"python_version":                 "3.11",
	"sys_platform":                   "linux",
}

// baseEnv is a Debian-like base: numpy 1.24.2 from the host.
func baseEnv(extra ...string) Installed {
	have := Installed{
		Packages: map[string]string{"numpy": "1.24.2", "pip": "23.0.1"},
		Markers:  py311,
		Tags:     []string{"cp311-cp311-manylinux_2_17_x86_64", "cp311-abi3-manylinux_2_17_x86_64", "cp311-none-any", "py3-none-any"},
	}
	for _, e := range extra {
		name, version, _ := strings.Cut(e, "==")
		have.Packages[pyreq.Normalize(name)] = version
	}
	return have
}

const planList = `alpha>=1.0,<3.0
beta>=1.0,<2.0
delta
eps
omega
kappa
`

// newPlanCache fills a cache under a wide list, then narrows the list to
// planList, so that it holds versions the list now refuses.
func newPlanCache(t *testing.T) testCache {
	t.Helper()
	tc := newTestCache(t, "alpha>=1.0a0\nbeta\ndelta\neps\nomega\nkappa\n")
	specs := []wheeltest.Spec{
		{Name: "alpha", Version: "1.0"},
		{Name: "alpha", Version: "2.0", Requires: []string{"beta>=1.2", `winonly; sys_platform == "win32"`, `sockslib>=1; extra == "socks"`}},
		{Name: "alpha", Version: "2.5b1"},
		{Name: "alpha", Version: "3.0"},
		{Name: "beta", Version: "1.0"},
		{Name: "beta", Version: "1.5"},
		{Name: "beta", Version: "1.8", RequiresPython: ">=3.12"},
		{Name: "beta", Version: "1.9", Tag: "cp311-cp311-win_amd64"},
		{Name: "beta", Version: "2.0"},
		{Name: "delta", Version: "1.0", Requires: []string{"gamma"}},
		{Name: "eps", Version: "1.0", Requires: []string{"numpy>=1.20"}},
		{Name: "omega", Version: "1.0", Requires: []string{"numpy>=2.0"}},
		{Name: "kappa", Version: "1.0", Requires: []string{"beta<1.2"}},
	}
	var files []string
	for _, s := range specs {
		files = append(files, tc.wheel(t, s))
	}
	_, err := tc.Add(files...)
	require.NoError(t, err)
	tc.setList(t, planList)
	return tc
}

func picks(p Plan) []string {
	var out []string
	for _, pk := range p.Install {
		s := pk.Name + "==" + pk.Version
		if pk.RequiredBy != "" {
			s += " <- " + pk.RequiredBy
		}
		out = append(out, s)
	}
	return out
}

func satisfied(p Plan) []string {
	var out []string
	for _, s := range p.Satisfied {
		out = append(out, fmt.Sprintf("%s %s for %q by %q", s.Name, s.Version, s.Requirement, s.RequiredBy))
	}
	return out
}

func TestPlanResolves(t *testing.T) {
	tc := newPlanCache(t)
	tests := []struct {
		desc      string
		reqs      []string
		have      Installed
		install   []string
		satisfied []string
	}{
		{"newest allowed version and its dependency; refused, pre-release, wrong-tag and wrong-python wheels skipped",
			[]string{"alpha"}, baseEnv(), []string{"alpha==2.0", "beta==1.5 <- alpha 2.0"}, nil},
		{"specifier narrows the choice", []string{"alpha<2"}, baseEnv(), []string{"alpha==1.0"}, nil},
		{"~= and names normalised", []string{"ALPHA~=1.0"}, baseEnv(), []string{"alpha==1.0"}, nil},
		{"a dependency satisfied by the base, though the list does not name it",
			[]string{"eps"}, baseEnv(), []string{"eps==1.0"}, []string{`numpy 1.24.2 for "numpy>=1.20" by "eps 1.0"`}},
		{"what the environment has is not installed again",
			[]string{"alpha"}, baseEnv("alpha==2.0", "beta==1.3"), nil, []string{`alpha 2.0 for "alpha" by ""`}},
		{"what the base has is satisfied though the list does not allow it: nothing is installed",
			[]string{"numpy", "alpha==3.0"}, baseEnv("alpha==3.0"), nil, []string{`numpy 1.24.2 for "numpy" by ""`, `alpha 3.0 for "alpha==3.0" by ""`}},
		{"a dependency the session already has",
			[]string{"alpha==2.0"}, baseEnv("beta==1.3"), []string{"alpha==2.0"}, []string{`beta 1.3 for "beta>=1.2" by "alpha 2.0"`}},
		{"an installed version the request excludes is replaced", []string{"alpha>=2"}, baseEnv("alpha==1.0"), []string{"alpha==2.0", "beta==1.5 <- alpha 2.0"}, nil},
		{"a requirement whose marker does not hold is skipped", []string{`alpha; sys_platform == "win32"`}, baseEnv(), nil, nil},
		{"explicit pin", []string{"beta==1.0"}, baseEnv(), []string{"beta==1.0"}, nil},
		{"pin agrees with a dependency", []string{"beta==1.5", "alpha"}, baseEnv(), []string{"beta==1.5", "alpha==2.0"}, nil},
	}
	for _, tt := range tests {
		p, err := tc.Plan(tt.reqs, tt.have)
		require.NoError(t, err, tt.desc)
		assert.Equal(t, tt.install, picks(p), tt.desc)
		assert.Equal(t, tt.satisfied, satisfied(p), tt.desc)
	}
}

func TestPlanRefuses(t *testing.T) {
	tc := newPlanCache(t)
	tests := []struct {
		desc     string
		reqs     []string
		match    error
		name     string
		version  string
		by       string
		contains string
	}{
		{"a package not on the list", []string{"gamma"}, ErrNotAllowed, "gamma", "", "", "gamma is not on the package allow-list"},
		{"a package not on the list, newer than the base's", []string{"numpy>=2"}, ErrNotAllowed, "numpy", "", "", "numpy is not on the package allow-list"},
		{"a cached version the list refuses", []string{"alpha==3.0"}, ErrNotAllowed, "alpha", "3.0", "", "alpha 3.0 is not allowed: the allow-list's line 1 says alpha>=1.0,<3.0"},
		{"a newer cached version the list refuses", []string{"alpha>=3"}, ErrNotAllowed, "alpha", "3.0", "", "is not allowed"},
		{"an uncached pinned version the list refuses", []string{"alpha==9.0"}, ErrNotAllowed, "alpha", "9.0", "", "alpha 9.0 is not allowed"},
		{"a pinned pre-release the list does not name", []string{"alpha==2.5b1"}, ErrNotAllowed, "alpha", "2.5b1", "", "pre-release"},
		{"a dependency not on the list", []string{"delta"}, ErrNotAllowed, "gamma", "", "delta 1.0", "gamma is not on the package allow-list, and the environment does not have it (required by delta 1.0)"},
		{"a dependency the base has at a version too old", []string{"omega"}, ErrNotAllowed, "numpy", "", "omega 1.0", "the environment's numpy 1.24.2 does not satisfy numpy>=2.0"},
		{"an extra's dependency not on the list", []string{"alpha[socks]"}, ErrNotAllowed, "sockslib", "", "alpha 2.0", "sockslib is not on the package allow-list"},
		{"a cached version the list refuses, newer than any allowed", []string{"beta>=1.6"}, ErrNotAllowed, "beta", "2.0", "", "beta 2.0 is not allowed"},
		{"allowed but not cached", []string{"beta>=1.6,<2"}, ErrUnavailable, "beta", "", "", "no wheel in the package cache satisfies it and the allow-list; cached for this environment: 2.0, 1.5, 1.0"},
		{"conflicting dependencies", []string{"alpha", "kappa"}, ErrUnavailable, "beta", "", "kappa 1.0", "conflicts with beta 1.5, already chosen for alpha 2.0"},
		{"a request excluding every allowed version", []string{"beta<1.0"}, ErrUnavailable, "beta", "", "", "the allow-list's line 2 says beta>=1.0,<2.0"},
		{"bad syntax", []string{"alpha>>1"}, ErrBadRequest, "", "", "", "alpha>>1"},
		{"a URL", []string{"alpha @ https://example.com/a.whl"}, ErrBadRequest, "", "", "", "direct references"},
		{"nothing asked", nil, ErrBadRequest, "", "", "", "no requirements"},
		{"too many", make([]string, MaxRequirements+1), ErrBadRequest, "", "", "", "more than"},
	}
	for _, tt := range tests {
		_, err := tc.Plan(tt.reqs, baseEnv())
		require.ErrorIs(t, err, tt.match, tt.desc)
		assert.ErrorContains(t, err, tt.contains, tt.desc)
		switch {
		case tt.match == ErrNotAllowed:
			var na *NotAllowedError
			require.ErrorAs(t, err, &na, tt.desc)
			assert.Equal(t, tt.name, na.Name, tt.desc)
			assert.Equal(t, tt.version, na.Version, tt.desc)
			assert.Equal(t, tt.by, na.RequiredBy, tt.desc)
		case tt.match == ErrUnavailable:
			var ua *UnavailableError
			require.ErrorAs(t, err, &ua, tt.desc)
			assert.Equal(t, tt.name, ua.Name, tt.desc)
			assert.Equal(t, tt.by, ua.RequiredBy, tt.desc)
		}
	}
}

func TestPlanCommand(t *testing.T) {
	tc := newPlanCache(t)
	p, err := tc.Plan([]string{"alpha"}, baseEnv())
	require.NoError(t, err)
	list, err := tc.List()
	require.NoError(t, err)
	hash := map[string]string{}
	for _, d := range list {
		hash[d.Name+"=="+d.Version] = d.SHA256
	}
	assert.Equal(t, "alpha==2.0 --hash=sha256:"+hash["alpha==2.0"]+"\nbeta==1.5 --hash=sha256:"+hash["beta==1.5"]+"\n",
		string(p.Requirements()), "a hash-locked requirement per planned wheel")
	assert.Equal(t, []string{"/opt/venv/bin/python", "-m", "pip", "install", "--no-index", "--find-links", "/opt/wheels",
		"--no-deps", "--require-hashes", "--only-binary", ":all:", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
		"--requirement", "/dev/stdin"}, p.Command(VenvPython, WheelsDir))

	p, err = tc.Plan([]string{"alpha"}, baseEnv("alpha==2.0", "beta==1.5"))
	require.NoError(t, err)
	assert.Nil(t, p.Command(VenvPython, WheelsDir), "nothing to install, nothing to run")
}

func TestPlanFailsClosedOnBadList(t *testing.T) {
	tc := newPlanCache(t)
	tc.setList(t, planList+"oops=1\n")
	_, err := tc.Plan([]string{"alpha"}, baseEnv())
	assert.ErrorIs(t, err, ErrAllowList, "no plan while the list is broken")
	assert.ErrorContains(t, err, `line 7: "oops=1"`)
}
