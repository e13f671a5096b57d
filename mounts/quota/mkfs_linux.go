package quota

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
)

// tools are the e2fsprogs the package executes: absolute paths found at
// start, a fixed environment, and arguments of its own making only. The
// image is handed over as an inherited descriptor, never as a path.
type tools struct {
	mke2fs, e2fsck string
	// prezeroed: mke2fs knows -E assume_storage_prezeroed (1.47), which
	// skips zeroing inode tables and journal on a fallocated image and
	// marks them zeroed, so the kernel's lazy init never writes them.
	prezeroed bool
}

var toolDirs = []string{"/usr/sbin", "/sbin"}

// toolEnv is the whole environment of the tools: none of the daemon's.
var toolEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

func findTools(ctx context.Context) (tools, error) {
	var t tools
	for _, name := range []string{"mke2fs", "e2fsck"} {
		p, err := findTool(name)
		if err != nil {
			return t, err
		}
		if name == "mke2fs" {
			t.mke2fs = p
		} else {
			t.e2fsck = p
		}
	}
	out, err := run(ctx, t.mke2fs, nil, "-V")
	if err != nil {
		return t, err
	}
	t.prezeroed = versionAtLeast(out, 1, 47)
	return t, nil
}

func findTool(name string) (string, error) {
	for _, d := range toolDirs {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %v (install e2fsprogs)", name, toolDirs)
}

var e2fsVersion = regexp.MustCompile(`(?m)^mke2fs (\d+)\.(\d+)`)

// versionAtLeast reads mke2fs -V output ("mke2fs 1.47.0 (5-Feb-2023)").
func versionAtLeast(out []byte, major, minor int) bool {
	m := e2fsVersion.FindSubmatch(out)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(string(m[1]))
	mi, _ := strconv.Atoi(string(m[2]))
	return ma > major || ma == major && mi >= minor
}

// fdArg names the first inherited descriptor in the child.
const fdArg = "/proc/self/fd/3"

// run executes a tool with the image (if any) as descriptor 3, returning
// its combined output.
func run(ctx context.Context, path string, image *os.File, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = toolEnv
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if image != nil {
		cmd.ExtraFiles = []*os.File{image}
	}
	err := cmd.Run()
	return out.Bytes(), err
}

// imageSpec is what a new ext4 image holds.
type imageSpec struct {
	blocks int64 // of blockSize bytes
	// inodes, or 0 for one per inodeRatio bytes (the user image: its
	// inode count then grows with it).
	inodes int64
	// journal in MiB, or 0 for none.
	journalMiB int64
	// growable keeps the reserved descriptor blocks online growth uses.
	growable bool
}

// mkfs makes an ext4 filesystem on image, which must be fallocated (its
// blocks read as zeros). Never with discard: on a file, mke2fs discards by
// punching holes, which would give back the space the image reserves.
func (t tools) mkfs(ctx context.Context, image *os.File, s imageSpec) error {
	ext := "nodiscard,lazy_itable_init=1,lazy_journal_init=1"
	if t.prezeroed {
		ext = "nodiscard,assume_storage_prezeroed=1"
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", strconv.Itoa(blockSize), "-I", strconv.Itoa(inodeSize), "-m", "0", "-E", ext}
	if s.inodes > 0 {
		args = append(args, "-N", strconv.FormatInt(s.inodes, 10))
	} else {
		args = append(args, "-i", strconv.Itoa(inodeRatio))
	}
	if s.journalMiB > 0 {
		args = append(args, "-J", "size="+strconv.FormatInt(s.journalMiB, 10))
	} else {
		args = append(args, "-O", "^has_journal")
	}
	if !s.growable {
		args = append(args, "-O", "^resize_inode")
	}
	args = append(args, fdArg, strconv.FormatInt(s.blocks, 10))
	if out, err := run(ctx, t.mke2fs, image, args...); err != nil {
		return fmt.Errorf("mke2fs: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// fsck repairs an image that is not mounted anywhere (e2fsck -p: only
// what is safe without a human; quick on a clean filesystem).
func (t tools) fsck(ctx context.Context, image *os.File) error {
	out, err := run(ctx, t.e2fsck, image, "-p", fdArg)
	var exit *exec.ExitError
	// 1: errors corrected; 2: corrected, a reboot is asked for (meant
	// for the root filesystem).
	if errors.As(err, &exit) && exit.ExitCode() <= 2 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("e2fsck: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// journalMiB sizes a journal for a filesystem of the given bytes: the
// smallest ext4 allows (1024 blocks) up to 512 MiB, then larger for
// throughput on big budgets.
func journalMiB(bytes int64) int64 {
	switch {
	case bytes < 512*mib:
		return 4
	case bytes < 4096*mib:
		return 16
	default:
		return 64
	}
}

// sessionSpec is the image of a session: exactly S bytes (what it
// charges to the user's budget), with F inodes beyond the filesystem's
// own and the session's directories. Small images get no journal: its
// 4 MiB would be most of them, and e2fsck repairs them on re-attach.
func sessionSpec(l SessionLimits) imageSpec {
	s := imageSpec{blocks: l.Bytes / blockSize, inodes: l.Files + firstInode + sessionLayout}
	if l.Bytes >= 64*mib {
		s.journalMiB = 4
	}
	return s
}

// userImageBytes is the size of a user's image for a budget of want
// bytes: the budget and the directories' allowance, plus an estimate of
// ext4's own (journal; inode tables, 1/64; the clusters kept back for
// metadata, 2% up to 16 MiB; descriptors, bitmaps and the descriptor
// blocks reserved for growth, under 1%), which is not the user's to pay.
func userImageBytes(want int64) int64 {
	b := want + dirAllowance + journalMiB(want)*mib + want/(inodeRatio/inodeSize) + min(want/50, 16*mib) + want/128 + 2*mib
	return (b + blockSize - 1) / blockSize * blockSize
}
