// Package wheeltest helps the tests of packages, of the daemon and of its
// clients: it writes tiny pure-Python wheels (a module <name>_mod whose
// VERSION says which wheel it came from, with METADATA, WHEEL and RECORD
// as PEP 427 asks, or broken on purpose) and finds the host python to
// install them with.
package wheeltest

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Spec describes a tiny pure-Python wheel for tests.
type Spec struct {
	Name, Version string
	Requires      []string
	// Tag defaults to py3-none-any.
	Tag string
	// MetaName and MetaVersion override what METADATA says.
	MetaName, MetaVersion string
	RequiresPython        string
	// Omit leaves a file (METADATA, WHEEL, RECORD) out of the wheel.
	Omit string
	// Filename overrides the file's name.
	Filename string
	// Description is METADATA's body.
	Description string
}

// FileName is the wheel's file name.
func (w Spec) FileName() string {
	if w.Filename != "" {
		return w.Filename
	}
	tag := w.Tag
	if tag == "" {
		tag = "py3-none-any"
	}
	return fmt.Sprintf("%s-%s-%s.whl", strings.ReplaceAll(w.Name, "-", "_"), w.Version, tag)
}

// Write writes the wheel into dir and returns its path. The module
// it installs, <name>_mod, records its version in VERSION.
func Write(t *testing.T, dir string, w Spec) string {
	t.Helper()
	p := filepath.Join(dir, w.FileName())
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	zw := zip.NewWriter(f)
	mod := strings.ReplaceAll(w.Name, "-", "_") + "_mod"
	info := strings.ReplaceAll(w.Name, "-", "_") + "-" + w.Version + ".dist-info"
	metaName, metaVersion := w.Name, w.Version
	if w.MetaName != "" {
		metaName = w.MetaName
	}
	if w.MetaVersion != "" {
		metaVersion = w.MetaVersion
	}
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", metaName, metaVersion)
	if w.RequiresPython != "" {
		meta += "Requires-Python: " + w.RequiresPython + "\n"
	}
	for _, r := range w.Requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	meta += "\nA test package.\nName: not-a-header\n" + w.Description
	files := []struct{ name, body string }{
		{mod + "/__init__.py", fmt.Sprintf("VERSION = %q\n", w.Version)},
		{info + "/METADATA", meta},
		{info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: sandboxd-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
		{info + "/top_level.txt", mod + "\n"},
	}
	var record strings.Builder
	for _, fl := range files {
		if strings.HasSuffix(fl.name, "/"+w.Omit) {
			continue
		}
		fw, err := zw.Create(fl.name)
		require.NoError(t, err)
		_, err = fw.Write([]byte(fl.body))
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(fl.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", fl.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(fl.body))
	}
	if w.Omit != "RECORD" {
		record.WriteString(info + "/RECORD,,\n")
		fw, err := zw.Create(info + "/RECORD")
		require.NoError(t, err)
		_, err = fw.Write([]byte(record.String()))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return p
}

// HostPython is the host's Debian python with pip and venv, or skips the
// test.
func HostPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import pip, venv, ensurepip").Run(); err != nil {
		t.Skipf("needs %s with pip and venv (Debian python3-pip, python3-venv): %v", python, err)
	}
	return python
}

// CleanEnv is a minimal environment for pip: none of the caller's PIP_*
// settings leak in.
func CleanEnv(home string) []string {
	return []string{"PATH=/usr/bin:/bin", "HOME=" + home, "LANG=C.UTF-8"}
}
