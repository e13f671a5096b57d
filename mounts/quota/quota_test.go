package quota

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"alice", true},
		{"chat-1_x", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"../x", false},
		{"a\x00b", false},
		{".hidden", false},
		{tmpPrefix + "x", false},
		{string(make([]byte, 256)), false},
	} {
		err := checkName("session", tc.id)
		if tc.ok {
			assert.NoError(t, err, "%q", tc.id)
		} else {
			assert.ErrorIs(t, err, ErrInvalid, "%q", tc.id)
		}
	}
}

func TestLimitsCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    SessionLimits
		ok   bool
	}{
		{"default", SessionLimits{Bytes: 100 * mib, Files: 10000}, true},
		{"smallest", SessionLimits{Bytes: MinSessionBytes, Files: 1}, true},
		{"too small", SessionLimits{Bytes: MinSessionBytes - 1, Files: 1}, false},
		{"no files", SessionLimits{Bytes: 100 * mib, Files: 0}, false},
		{"negative files", SessionLimits{Bytes: 100 * mib, Files: -1}, false},
		{"too many files", SessionLimits{Bytes: 1 << 40, Files: maxSessionFiles + 1}, false},
		{"inodes would fill the image", SessionLimits{Bytes: 2 * mib, Files: 10000}, false},
	} {
		err := tc.l.check()
		if tc.ok {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorIs(t, err, ErrInvalid, tc.name)
		}
	}
	assert.NoError(t, UserLimits{Bytes: MinUserBytes}.check())
	assert.ErrorIs(t, UserLimits{Bytes: 0}.check(), ErrInvalid)
}

func TestVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{
		{"mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0\n", true},
		{"mke2fs 1.47.2 (1-Jan-2025)", true},
		{"mke2fs 1.46.5 (30-Dec-2021)", false},
		{"mke2fs 2.0.0", true},
		{"something else", false},
	} {
		assert.Equal(t, tc.want, versionAtLeast([]byte(tc.out), 1, 47), tc.out)
	}
}

func TestImageSizes(t *testing.T) {
	small := sessionSpec(SessionLimits{Bytes: 16 * mib, Files: 100})
	assert.Zero(t, small.journalMiB, "a small session image has no journal")
	assert.Equal(t, int64(16*mib/blockSize), small.blocks, "a session image is exactly S")
	assert.Equal(t, int64(100+firstInode+sessionLayout), small.inodes, "F inodes beyond ext4's and the layout's")
	assert.False(t, small.growable)
	big := sessionSpec(SessionLimits{Bytes: 100 * mib, Files: 10000})
	assert.Equal(t, int64(4), big.journalMiB, "a larger one has ext4's smallest journal")

	prev := int64(0)
	for _, want := range []int64{mib, 5 * mib, 100 * mib, 1 << 30, 100 << 30} {
		b := userImageBytes(want)
		assert.Greater(t, b, want+dirAllowance, "the image holds the budget and its metadata")
		assert.Less(t, b, want+want/10+24*mib, "the estimate stays near ext4's real overhead")
		assert.Zero(t, b%blockSize)
		assert.Greater(t, b, prev)
		prev = b
	}
}

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, projectsFile)
	r, err := loadRecord(p)
	require.NoError(t, err, "a missing record is empty")
	assert.Empty(t, r.Sessions)
	r.Budget, r.Shared = 1<<30, FirstProjectID
	r.Sessions["s1"] = projectSession{ID: FirstProjectID + 1, Bytes: 100 * mib, Files: 10}
	r.Sessions["s2"] = projectSession{ID: FirstProjectID + 2, Bytes: 50 * mib, Files: 10}
	assert.Equal(t, int64(150*mib), r.reserved())
	require.NoError(t, r.save(p))
	r2, err := loadRecord(p)
	require.NoError(t, err)
	assert.Equal(t, r, r2, "a record reads back as written")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left")

	require.NoError(t, os.WriteFile(p, []byte("{"), 0o600))
	_, err = loadRecord(p)
	assert.Error(t, err, "a damaged record is an error, not an empty one")
}

func TestIDAllocator(t *testing.T) {
	dir := t.TempDir()
	a := &idAllocator{path: filepath.Join(dir, "next")}
	none := func(uint32) bool { return false }
	id, err := a.next(none)
	require.NoError(t, err)
	assert.Equal(t, uint32(FirstProjectID), id)
	id, err = a.next(func(id uint32) bool { return id < FirstProjectID+5 })
	require.NoError(t, err)
	assert.Equal(t, uint32(FirstProjectID+5), id, "ids in use are skipped")
	b := &idAllocator{path: a.path}
	id, err = b.next(none)
	require.NoError(t, err)
	assert.Equal(t, uint32(FirstProjectID+6), id, "the next id survives a restart")

	require.NoError(t, os.WriteFile(a.path, []byte("4294967295\n"), 0o600))
	_, err = a.next(none)
	assert.Error(t, err, "ids run out at 2^32-1")
	require.NoError(t, os.WriteFile(a.path, []byte("12\n"), 0o600))
	_, err = a.next(none)
	assert.Error(t, err, "an id below the first is refused")
	assert.Less(t, uint64(FirstProjectID), uint64(math.MaxUint32))
}

func TestReport(t *testing.T) {
	noPrj, noLoop := errors.New("no prjquota"), errors.New("no loop-control")
	for _, tc := range []struct {
		r        Report
		contains string
		enforced bool
	}{
		{Report{Mode: ModeProject, FS: "ext4", Dir: "/var/lib/sandboxd"}, "project quotas on ext4 at /var/lib/sandboxd", true},
		{Report{Mode: ModeLoop, Dir: "/s", DirectIO: true, Grow: true, ProjectErr: noPrj}, "loop-mounted ext4 images under /s (direct I/O; no project quotas: no prjquota)", true},
		{Report{Mode: ModeLoop, Dir: "/s", ProjectErr: noPrj}, "cannot grow online without CAP_SYS_RESOURCE", true},
		{Report{Mode: ModeNone, ProjectErr: noPrj, LoopErr: noLoop}, "NOT ENFORCED: no project quotas (no prjquota) and no loop-mounted images (no loop-control)", false},
	} {
		assert.Contains(t, tc.r.String(), tc.contains)
		if tc.enforced {
			assert.NoError(t, tc.r.Err(), "%s", tc.r)
		} else {
			assert.Error(t, tc.r.Err(), "%s", tc.r)
		}
	}
}
