package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

const execUsage = `Usage: sandboxctl exec [FLAGS] ID -- ARGV...
       sandboxctl exec [FLAGS] ID -c 'COMMAND'
       sandboxctl exec --background [--cwd DIR] [--env K=V] ID -- ARGV... | -c 'COMMAND'

Runs a command in session ID, prints its stdout and stderr to sandboxctl's
and exits with its exit status (128+n when signal n ended it). The output
comes when the command has ended, or as it is written with --stream.
Interrupting sandboxctl kills the command.

With --background the command is started as a background process instead,
whose JSON is printed: see sandboxctl ps, logs and kill.

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

func execute(ctx context.Context, c *client.Client, args []string, std stdio) error {
	fs := newFlagSet("exec", std, execUsage)
	var req api.ExecRequest
	env := envFlag{}
	fs.Float64Var(&req.TimeoutSec, "timeout", 0, "seconds before the command is killed (default: the daemon's, 30)")
	fs.StringVar(&req.Cwd, "cwd", "", "working directory inside the sandbox (default: the workspace)")
	fs.Var(env, "env", "set an environment variable, K=V (repeatable)")
	stdinFile := fs.String("stdin-file", "", "send this file as the command's stdin; - sends sandboxctl's stdin")
	fs.StringVar(&req.Command, "c", "", "run this command line with /bin/sh -c instead of ARGV")
	stream := fs.Bool("stream", false, "print the output as it is written, not when the command has ended")
	background := fs.Bool("background", false, "start a background process and print it (no --timeout, --stdin-file or --stream)")
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
	if *background {
		for _, name := range []string{"timeout", "stdin-file", "stream"} {
			if isSet(fs, name) {
				return usagef("exec: --%s does not go with --background", name)
			}
		}
		p, err := c.StartProcess(ctx, id, api.StartProcessRequest{Argv: req.Argv, Command: req.Command, Cwd: req.Cwd, Env: req.Env})
		if err != nil {
			return err
		}
		return printJSON(std.out, p)
	}
	if *stdinFile != "" {
		stdin, err := readStdin(*stdinFile, std.in)
		if err != nil {
			return err
		}
		req.Stdin = stdin
	}

	run := runBuffered
	if *stream {
		run = runStreamed
	}
	res, err := run(ctx, c, id, req, std)
	if err != nil {
		return err
	}
	reportEnd(std.err, res)
	if res.ExitCode != 0 {
		return exitStatus(res.ExitCode)
	}
	return nil
}

// isSet reports whether flag name was given.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runBuffered runs the command and prints its output once it has ended.
func runBuffered(ctx context.Context, c *client.Client, id string, req api.ExecRequest, std stdio) (api.ExecResult, error) {
	res, err := c.Exec(ctx, id, req)
	if err != nil {
		return res, err
	}
	if _, err := io.WriteString(std.out, res.Stdout); err != nil {
		return res, fmt.Errorf("write stdout: %w", err)
	}
	if _, err := io.WriteString(std.err, res.Stderr); err != nil {
		return res, fmt.Errorf("write stderr: %w", err)
	}
	return res, nil
}

// runStreamed runs the command and prints its output as it comes, the
// bytes of each stream exactly as written.
func runStreamed(ctx context.Context, c *client.Client, id string, req api.ExecRequest, std stdio) (api.ExecResult, error) {
	return c.ExecStream(ctx, id, req, func(ev api.ExecEvent) error {
		w := std.out
		if ev.Type == api.EventStderr {
			w = std.err
		}
		data := []byte(ev.Data)
		if ev.DataB64 != "" {
			var err error
			if data, err = base64.StdEncoding.DecodeString(ev.DataB64); err != nil {
				return fmt.Errorf("decode %s: %w", ev.Type, err)
			}
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", ev.Type, err)
		}
		return nil
	})
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
