package shim

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// BindMode is the argv[1] the constructor in shim.c takes over for the
// binder, which finishes a sandbox that was started without its
// session's mounts (see Bind).
const BindMode = "sandbox-bind"

// Mount is a detached mount (from open_tree(2) with OPEN_TREE_CLONE, or
// fsmount(2)) to attach at Target, an absolute path inside a sandbox.
type Mount struct {
	Target string
	Tree   *os.File
}

// Bind runs the binder, helper being the sandboxd binary: it enters the
// mount namespace mntns and the UTS namespace utsns of a sandbox no
// command has run in yet, sets its hostname and attaches mounts at their
// targets, in order (a target may lie in an earlier mount). A target that
// is, or lies beneath, a symlink is refused.
func Bind(ctx context.Context, helper string, mntns, utsns *os.File, hostname string, mounts []Mount) error {
	if hostname == "" || strings.ContainsRune(hostname, 0) {
		return fmt.Errorf("%w: hostname %q", ErrInvalid, hostname)
	}
	args := []string{BindMode, hostname}
	files := []*os.File{mntns, utsns} // fds bindMntnsFD, bindUtsnsFD
	for _, m := range mounts {
		if !strings.HasPrefix(m.Target, "/") || strings.ContainsRune(m.Target, 0) || m.Tree == nil {
			return fmt.Errorf("%w: mount target %q", ErrInvalid, m.Target)
		}
		args = append(args, m.Target)
		files = append(files, m.Tree) // from bindMountsFD on
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helper, args...)
	cmd.Env = []string{}
	cmd.ExtraFiles = files
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bind sandbox %s: %w: %s", hostname, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
