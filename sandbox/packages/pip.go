package packages

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// Paths inside sandboxes.
const (
	// VenvDir is where the session's venv (base env overlay) is mounted.
	VenvDir = "/opt/venv"
	// VenvPython is the venv's interpreter.
	VenvPython = VenvDir + "/bin/python"
	// WheelsDir is where PresentedDir is bound read-only.
	WheelsDir = "/opt/wheels"
)

//go:embed pip_shim.py
var pipShim string

// PipConf is the venv-level pip configuration (<venv>/pip.conf, which
// pip reads for the venv it runs in, over the user's): no index, only the
// presented cache.
func PipConf(wheelsDir string) []byte {
	return []byte(fmt.Sprintf(`# Written by sandboxd: packages install only from the sandbox's package
# cache, which holds what the allow-list allows.
[global]
no-index = true
find-links = %s
disable-pip-version-check = true
`, wheelsDir))
}

// PipShim is the pip wrapper put in the venv's bin (as pip, pip3 and
// pip3.X): for `pip install NAME...` it reads the allow-list's copy at
// allowListPath and, for a project not listed or a pinned version the
// list refuses, says so and exits 1; otherwise it runs `python -m pip`
// unchanged. It is the message only: the presented directory is what
// enforces the list.
func PipShim(python, allowListPath string) []byte {
	s := strings.Replace(pipShim, "__PYTHON__", python, 1)
	s = strings.Replace(s, "__ALLOW_LIST__", pyString(allowListPath), 1)
	return []byte(s)
}

// SessionEnv is the environment for commands in sessions: the same as
// PipConf, for a session that replaced pip.conf in its own venv layer.
func SessionEnv(wheelsDir string) []string {
	return []string{
		"PIP_NO_INDEX=1",
		"PIP_FIND_LINKS=" + wheelsDir,
		"PIP_DISABLE_PIP_VERSION_CHECK=1",
	}
}

// AllowListInSandbox is where the shim finds the allow-list's copy.
func AllowListInSandbox(wheelsDir string) string { return path.Join(wheelsDir, AllowListCopy) }

// pyString quotes s as a Python string literal (JSON's escapes are a
// subset of Python's).
func pyString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
