package packages

import (
	"os/exec"
	"testing"
)

// hostPython is the host's Debian python with pip, or skips the test.
func hostPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import pip, venv").Run(); err != nil {
		t.Skipf("needs %s with pip and venv (Debian python3-pip, python3-venv): %v", python, err)
	}
	return python
}

// cleanEnv is a minimal environment for pip: nothing of the caller's
// PIP_* settings leaks in.
func cleanEnv(home string) []string {
	return []string{"PATH=/usr/bin:/bin", "HOME=" + home, "LANG=C.UTF-8"}
}
