package envs

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"
)

func TestParseProbe(t *testing.T) {
	out := `{"probe": 1, "python": "3.11.2", "markers": {"python_version": "3.11"}, "tags": ["py3-none-any"],
	"distributions": [["Pandas", "2.1.0"], ["pandas", "1.5.3"], ["numpy", "1.24.2"], ["../evil", "1.0"], ["bad", "not a version"]]}`
	p, err := ParseProbe([]byte(out))
	require.NoError(t, err)
	assert.Equal(t, "3.11.2", p.Python)
	assert.Equal(t, map[string]Package{"pandas": {"Pandas", "2.1.0"}, "numpy": {"numpy", "1.24.2"}}, p.Packages,
		"the first distribution on sys.path wins; bad names and versions are dropped")
	assert.Equal(t, map[string]string{"pandas": "2.1.0", "numpy": "1.24.2"}, p.Installed().Packages)

	base := Probe{Packages: map[string]Package{"numpy": {"numpy", "1.24.2"}, "pandas": {"pandas", "1.5.3"}}}
	assert.Equal(t, []Package{{"Pandas", "2.1.0"}}, p.Beyond(base), "what the session has over its base")

	for _, bad := range []string{
		``, `{`, `[]`, `{"probe": 2, "python": "3.11.2"}`, `{"probe": 1, "python": "x"}`,
		`{"probe": 1, "python": "3.11.2", "distributions": {"a": 1}}`,
		strings.Repeat(" ", MaxProbeOutput+1),
	} {
		_, err := ParseProbe([]byte(bad))
		assert.ErrorIs(t, err, ErrProbe, "%.40q must be refused", bad)
	}
	var many []string
	for i := 0; i <= maxProbeDists; i++ {
		many = append(many, fmt.Sprintf(`["p%d", "1.0"]`, i))
	}
	_, err = ParseProbe([]byte(`{"probe": 1, "python": "3.11.2", "distributions": [` + strings.Join(many, ",") + `]}`))
	assert.ErrorIs(t, err, ErrProbe, "too many distributions")
}

// TestProbeScript runs the real probe with the host's python.
func TestProbeScript(t *testing.T) {
	python := wheeltest.HostPython(t)
	args := ProbeArgs(python)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = wheeltest.CleanEnv(t.TempDir())
	out, err := cmd.Output()
	require.NoError(t, err)
	p, err := ParseProbe(out)
	require.NoError(t, err, string(out))
	assert.Regexp(t, `^3\.\d+\.\d+`, p.Python)
	assert.Equal(t, "linux", p.Markers["sys_platform"])
	assert.Equal(t, p.Python, p.Markers["python_full_version"])
	assert.Contains(t, p.Tags, "py3-none-any", "the tags come from packaging")
	assert.Contains(t, p.Packages, "pip", "the host's pip is seen")
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	assert.Less(t, len(raw), MaxProbeOutput)
}
