package packages

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"
)

// TestPipShimReadsArguments loads the rendered shim as a module and asks
// it which requirements each pip command line installs (nil: it stays
// out), and what it says of each against a list.
func TestPipShimReadsArguments(t *testing.T) {
	python := wheeltest.HostPython(t)
	dir := t.TempDir()
	list := filepath.Join(dir, AllowListCopy)
	require.NoError(t, os.WriteFile(list, []byte("# comment\nalpha>=1,<2\nPython_PPTX\n"), 0o444))
	shim := filepath.Join(dir, "shim.py")
	require.NoError(t, os.WriteFile(shim, PipShim(python, list), 0o755))

	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"install", "alpha", "gamma"}, []string{"alpha", "gamma"}},
		{[]string{"-q", "install", "--upgrade", "alpha==1.5"}, []string{"alpha==1.5"}},
		{[]string{"install", "--target", "/tmp/t", "gamma"}, []string{"gamma"}},
		{[]string{"install", "--target=/tmp/t", "-t", "/x", "gamma"}, []string{"gamma"}},
		{[]string{"install", "-r", "requirements.txt"}, nil},
		{[]string{"install", "-rrequirements.txt"}, nil},
		{[]string{"install", "--index-url", "https://pypi.org/simple", "gamma"}, nil},
		{[]string{"install", "./gamma-1.0-py3-none-any.whl"}, nil},
		{[]string{"install", "/tmp/gamma.whl"}, nil},
		{[]string{"list"}, nil},
		{[]string{"download", "gamma"}, nil},
		{[]string{"install"}, []string{}},
	}
	var argv [][]string
	for _, c := range cases {
		argv = append(argv, c.args)
	}
	in, err := json.Marshal(argv)
	require.NoError(t, err)
	cmd := exec.Command(python, "-c", `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("shim", sys.argv[1])
shim = importlib.util.module_from_spec(spec)
spec.loader.exec_module(shim)
allowed = shim.read_list()
out = {"requested": [shim.requested(a) for a in json.load(sys.stdin)],
       "refusals": [shim.refusal(r, allowed) for r in ["alpha", "alpha==1.5", "alpha==2.0", "python-pptx==9", "gamma", "pip"]]}
print(json.dumps(out))
`, shim)
	cmd.Env = wheeltest.CleanEnv(dir)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	var got struct {
		Requested [][]string `json:"requested"`
		Refusals  []*string  `json:"refusals"`
	}
	require.NoError(t, json.Unmarshal(out, &got), string(out))
	for i, c := range cases {
		assert.Equal(t, c.want, got.Requested[i], "pip %v", c.args)
	}
	say := func(i int) string {
		if got.Refusals[i] == nil {
			return ""
		}
		return *got.Refusals[i]
	}
	assert.Equal(t, "", say(0), "alpha is listed")
	assert.Equal(t, "", say(1), "alpha 1.5 is allowed")
	assert.Equal(t, "alpha 2.0 is not allowed by this sandbox's package allow-list (it says alpha>=1,<2)", say(2))
	assert.Equal(t, "", say(3), "python-pptx is listed by another spelling, any version")
	assert.Equal(t, "gamma is not on this sandbox's package allow-list", say(4))
	assert.Equal(t, "", say(5), "what is installed already is left to pip")
}

func TestPipConfAndEnv(t *testing.T) {
	assert.Equal(t, "# Written by sandboxd: packages install only from the sandbox's package\n# cache, which holds what the allow-list allows.\n[global]\nno-index = true\nfind-links = /opt/wheels\ndisable-pip-version-check = true\n",
		string(PipConf(WheelsDir)))
	assert.Equal(t, []string{"PIP_NO_INDEX=1", "PIP_FIND_LINKS=/opt/wheels", "PIP_DISABLE_PIP_VERSION_CHECK=1"}, SessionEnv(WheelsDir))
	shim := string(PipShim(VenvPython, AllowListInSandbox(WheelsDir)))
	assert.True(t, strings.HasPrefix(shim, "#!/opt/venv/bin/python\n"), "the shim runs with the venv's python")
	assert.Contains(t, shim, `ALLOW_LIST = "/opt/wheels/allowed_packages.txt"`)
}
