package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

const execUsage = `Usage: sandboxctl exec [FLAGS] ID -- ARGV...
       sandboxctl exec [FLAGS] ID -c 'COMMAND'

Runs a command in session ID, prints its stdout and stderr to sandboxctl's
and exits with its exit status (128+n when signal n ended it).

Flags:
`

// envFlag collects repeated --env K=V flags.
type envFlag map[string]string

func (e envFlag) String() string {
	pairs := make([]string, 0, len(e))
	for k, v := range e {
		pairs = append(pairs, k+"="+v)
	}
	return strings.Join(pairs, ",")
}

func (e envFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", kv)
	}
	e[k] = v
	return nil
}

func execute(ctx context.Context, c *api.Client, args []string, std stdio) error {
	fs := newFlagSet("exec", std, execUsage)
	var req api.ExecRequest
	env := envFlag{}
	fs.Float64Var(&req.TimeoutSec, "timeout", 0, "seconds before the command is killed (default: the daemon's, 30)")
	fs.StringVar(&req.Cwd, "cwd", "", "working directory inside the sandbox (default: the workspace)")
	fs.Var(env, "env", "set an environment variable, K=V (repeatable)")
	stdinFile := fs.String("stdin-file", "", "send this file as the command's stdin; - sends sandboxctl's stdin")
	fs.StringVar(&req.Command, "c", "", "run this command line with /bin/sh -c instead of ARGV")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("exec: missing session ID")
	}
	id := fs.Arg(0)
	// Flags may also follow the ID (exec ID -c '...'); "--" ends them.
	if err := parse(fs, fs.Args()[1:]); err != nil {
		return err
	}
	req.Argv = fs.Args()
	if (len(req.Argv) == 0) == (req.Command == "") {
		return usagef("exec: give either -- ARGV... or -c 'COMMAND'")
	}
	if len(env) > 0 {
		req.Env = env
	}
	if *stdinFile != "" {
		stdin, err := readStdin(*stdinFile, std.in)
		if err != nil {
			return err
		}
		req.Stdin = stdin
	}

	res, err := c.Exec(ctx, id, req)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(std.out, res.Stdout); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	if _, err := io.WriteString(std.err, res.Stderr); err != nil {
		return fmt.Errorf("write stderr: %w", err)
	}
	reportEnd(std.err, res)
	if res.ExitCode != 0 {
		return exitStatus(res.ExitCode)
	}
	return nil
}

func readStdin(name string, stdin io.Reader) (string, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", fmt.Errorf("read stdin for the command: %w", err)
	}
	return string(b), nil
}

// reportEnd notes on w what the exit status alone does not tell.
func reportEnd(w io.Writer, res api.ExecResult) {
	if res.TimedOut {
		fmt.Fprintln(w, "sandboxctl: the command timed out and was killed")
	}
	if res.OOMKilled {
		fmt.Fprintln(w, "sandboxctl: the command ran out of memory and was killed")
	}
	if res.StdoutTruncated {
		fmt.Fprintln(w, "sandboxctl: stdout was truncated")
	}
	if res.StderrTruncated {
		fmt.Fprintln(w, "sandboxctl: stderr was truncated")
	}
}
