package quota

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestTemplateCopiesTheDataOfASparseFile(t *testing.T) {
	dir := t.TempDir()
	src, err := os.Create(filepath.Join(dir, "src"))
	require.NoError(t, err)
	defer src.Close()
	const size = 8 * mib
	require.NoError(t, src.Truncate(size))
	for _, off := range []int64{0, mib, 3*mib + 4096, size - 4096} {
		_, err := src.WriteAt(bytes.Repeat([]byte{byte(off >> 12)}, 4096), off)
		require.NoError(t, err)
	}
	require.NoError(t, src.Sync())
	tpl, err := readTemplate(src)
	require.NoError(t, err)
	var n int
	for _, e := range tpl.extents {
		n += len(e.data)
	}
	assert.Less(t, n, size/4, "only the data is kept, not the holes")

	dst, err := os.Create(filepath.Join(dir, "dst"))
	require.NoError(t, err)
	defer dst.Close()
	require.NoError(t, unix.Fallocate(int(dst.Fd()), 0, 0, size), "a zeroed image")
	require.NoError(t, tpl.writeTo(dst))
	a, err := os.ReadFile(src.Name())
	require.NoError(t, err)
	b, err := os.ReadFile(dst.Name())
	require.NoError(t, err)
	assert.True(t, bytes.Equal(a, b), "the copy reads as the original")
}
