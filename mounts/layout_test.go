package mounts

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeepFiles(t *testing.T) {
	from, to := t.TempDir(), t.TempDir()
	write := func(dir, name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644), "write %s", name)
	}
	for _, name := range []string{"a.pdf", "b.XLSX", "c.pptx", "d.docx", "e.txt", "noext"} {
		write(from, name, "new "+name)
	}
	write(to, "a.pdf", "old")
	write(to, "a-1.pdf", "old too")
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(from, "link.pdf")), "symlink")
	require.NoError(t, os.Mkdir(filepath.Join(from, "dir.docx"), 0o755), "directory")

	kept, err := KeepFiles(from, to, []string{".pdf", ".xlsx", ".pptx", ".docx"})
	require.NoError(t, err, "keep files")
	assert.ElementsMatch(t, []string{"a-2.pdf", "b.XLSX", "c.pptx", "d.docx"}, kept, "the listed kinds, regular files only")

	tests := []struct{ name, want string }{
		{"a.pdf", "old"},
		{"a-1.pdf", "old too"},
		{"a-2.pdf", "new a.pdf"},
		{"b.XLSX", "new b.XLSX"},
	}
	for _, tt := range tests {
		data, err := os.ReadFile(filepath.Join(to, tt.name))
		require.NoError(t, err, "read %s", tt.name)
		assert.Equal(t, tt.want, string(data), "content of %s", tt.name)
	}
	left, err := os.ReadDir(from)
	require.NoError(t, err, "list source")
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"e.txt", "noext", "link.pdf", "dir.docx"}, names, "the rest stays")

	none, err := KeepFiles(filepath.Join(from, "missing"), to, []string{".pdf"})
	assert.NoError(t, err, "a missing workspace keeps nothing")
	assert.Empty(t, none, "nothing kept")
}
