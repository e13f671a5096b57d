package cgroup

import (
	"fmt"
	"path"
	"strings"
)

// InitLeaf is the cgroup, beneath a session's, that holds the sandbox's
// PID 1 on v2 once PrepareSession has run, so that the session's own
// cgroup holds no process and can hand controllers to its execs.
const InitLeaf = "init"

// maxExecName bounds an exec cgroup's name; the kernel's limit is a file
// name's, this one keeps paths short.
const maxExecName = 64

// checkParent refuses a parent that is not an absolute, clean path below
// the root: a relative one would nest under the daemon's own cgroup, which
// belongs to whoever started it.
func checkParent(parent string) error {
	if !path.IsAbs(parent) || path.Clean(parent) != parent || parent == "/" {
		return fmt.Errorf("cgroup parent %q must be an absolute, clean path below /", parent)
	}
	return nil
}

// checkBelow refuses a cgroup path that is not strictly below parent, so
// that nothing outside the daemon's own tree is ever touched.
func checkBelow(parent, cgPath string) error {
	if path.Clean(cgPath) != cgPath || !strings.HasPrefix(cgPath, parent+"/") {
		return fmt.Errorf("cgroup %q is not below %s", cgPath, parent)
	}
	return nil
}

// checkSession refuses a path that is not a session's:
// parent/user_<id>/<session>.
func checkSession(parent, cgPath string) error {
	if err := checkBelow(parent, cgPath); err != nil {
		return err
	}
	user, session, ok := strings.Cut(strings.TrimPrefix(cgPath, parent+"/"), "/")
	if !ok || !strings.HasPrefix(user, "user_") || len(user) == len("user_") || session == "" || strings.Contains(session, "/") {
		return fmt.Errorf("cgroup %q is not a session's (%s/user_<id>/<session>)", cgPath, parent)
	}
	return nil
}

// checkExecName refuses a name that is not one plain path element made of
// letters, digits, '-' and '_' (so it can never be "..", a cgroup's own
// file such as cgroup.procs, or a path), or that is the init leaf's.
func checkExecName(name string) error {
	if name == "" || len(name) > maxExecName || name == InitLeaf {
		return fmt.Errorf("exec cgroup name %q: want 1 to %d characters, not %q", name, maxExecName, InitLeaf)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
		if !ok {
			return fmt.Errorf("exec cgroup name %q: only letters, digits, '-' and '_' are allowed", name)
		}
	}
	return nil
}
