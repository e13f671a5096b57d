package sandbox

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/packages"
)

// sandboxPath is PATH inside: the session's venv first.
const sandboxPath = mounts.VenvDir + "/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

// defaultEnv is every command's environment before the caller's additions:
// pip takes packages from the presented cache only (packages.SessionEnv,
// which holds even where a session replaced its venv's pip.conf) and keeps
// no cache in the workspace.
var defaultEnv = withPipEnv(map[string]string{
	"PATH":             sandboxPath,
	"HOME":             mounts.WorkspaceDir,
	"USER":             "sandbox",
	"LOGNAME":          "sandbox",
	"LANG":             "C.UTF-8",
	"TMPDIR":           "/tmp",
	"VIRTUAL_ENV":      mounts.VenvDir,
	"PIP_NO_CACHE_DIR": "1",
})

func withPipEnv(env map[string]string) map[string]string {
	for _, kv := range packages.SessionEnv(packages.WheelsDir) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// launch is a checked command, ready for an Executor.
type launch struct {
	Args []string
	// Env is applied in the command's own process only, after it dropped
	// to the sandbox user; no privileged process ever sees it.
	Env []string
	// Cwd is a clean absolute path inside the sandbox.
	Cwd string
	// Stdin, when nil, is /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive the output; when they are the same
	// writer, both streams share one pipe, which keeps their order.
	Stdout, Stderr io.Writer
}

// checkCommand validates a command and turns it into a launch.
func checkCommand(c Command) (launch, error) {
	invalid := func(format string, a ...any) (launch, error) {
		return launch{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
	}
	var args []string
	switch {
	case len(c.Argv) > 0 && c.Shell != "":
		return invalid("set either argv or command, not both")
	case len(c.Argv) > 0:
		args = c.Argv
	case c.Shell != "":
		args = []string{"/bin/sh", "-c", c.Shell}
	default:
		return invalid("argv or command is required")
	}
	if args[0] == "" {
		return invalid("argv[0] is empty")
	}
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return invalid("arguments must not contain NUL bytes")
		}
	}
	cwd := c.Cwd
	if cwd == "" {
		cwd = mounts.WorkspaceDir
	}
	if strings.ContainsRune(cwd, 0) {
		return invalid("cwd must not contain NUL bytes")
	}
	if !path.IsAbs(cwd) {
		cwd = path.Join(mounts.WorkspaceDir, cwd)
	}
	env := make(map[string]string, len(defaultEnv)+len(c.Env))
	for k, v := range defaultEnv {
		env[k] = v
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return invalid("env name %q is not valid", k)
		}
		env[k] = v
	}
	l := launch{Args: args, Cwd: path.Clean(cwd)}
	for k, v := range env {
		l.Env = append(l.Env, k+"="+v)
	}
	slices.Sort(l.Env)
	return l, nil
}

// execTimeout is the timeout a command runs under.
func execTimeout(req, def, max time.Duration) (time.Duration, error) {
	switch {
	case req < 0:
		return 0, fmt.Errorf("%w: timeout must not be negative", ErrInvalid)
	case req == 0:
		return min(def, max), nil
	}
	return min(req, max), nil
}
