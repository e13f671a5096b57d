// Command sandboxctl drives sandboxd from the shell through its API: it
// creates, lists, inspects and deletes sessions, runs commands in them,
// manages their files, installs packages into them, and shows what they
// use and what happens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sandboxd/sandboxd/api/client"
)

// Exit statuses of sandboxctl's own; exec exits with the command's status.
const (
	exitFailure = 1
	exitUsage   = 2
)

const topUsage = `Usage: sandboxctl [--socket PATH] COMMAND [ARGS]

Commands:
  info                          describe the daemon
  session create|ls|get|rm      manage sessions
  exec ID -- ARGV...            run a program in a session
  exec ID -c 'COMMAND'          run a shell command line in a session
  exec --stream ID ...          print a command's output as it is written
  exec --background ID ...      start a background process
  ps ID                         list a session's background processes
  logs [--filter RE] ID PID     print a background process's new output
  kill [--grace 5s] ID PID      kill a background process
  ls ID [PATH]                  list a session's directory
  stat ID PATH                  describe a session's file
  cat ID PATH                   print a session's file
  cp SRC DST                    copy a file into or out of a session (ID:PATH)
  rm ID PATH                    remove a session's file or directory
  mkdir ID PATH                 create a directory in a session
  mv ID FROM TO                 move a session's file
  edit --old X --new Y ID PATH  replace text in a session's file
  download USER NAME [DST]      download a user's kept output file
  stats ID                      what a session uses and has done
  top [--user U] [--once]       a live table of the sessions and what they use
  events [--user U] [--session S]  the daemon's events as they happen
  pkg install ID REQUIREMENT... install packages into a session (allow-listed, offline)
  pkg ls ID                     list what a session installed
  envs                          list the versions of the base environment
  user ID                       a user's limits, disk usage and sessions

Files commands take --root workspace (the default) or --root shared.

Run 'sandboxctl COMMAND --help' for a command's flags.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}

// stdio are the streams a run reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// usageError is a mistake in the command line; it exits 2. The flag
// package reports its own parse errors, which are then not printed again.
type usageError struct {
	msg      string
	reported bool
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitStatus ends sandboxctl with the status of the command it ran.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run is sandboxctl with its arguments (without the program name) and
// returns the exit status.
func run(ctx context.Context, args []string, std stdio, getenv func(string) string) int {
	fs := newFlagSet("sandboxctl", std, topUsage)
	socket := fs.String("socket", defaultSocket(getenv),
		"the daemon's Unix socket: $SANDBOXD_SOCKET, else ./var/run/sandboxd.sock if it exists, else /run/sandboxd.sock")
	err := parse(fs, args)
	if err == nil {
		err = dispatch(ctx, client.New(*socket), fs.Args(), std)
	}
	return exitCode(err, std.err)
}

func dispatch(ctx context.Context, c *client.Client, args []string, std stdio) error {
	if len(args) == 0 {
		return usagef("missing command; see sandboxctl --help")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "info":
		return info(ctx, c, rest, std)
	case "session":
		return session(ctx, c, rest, std)
	case "exec":
		return execute(ctx, c, rest, std)
	case "ls":
		return list(ctx, c, rest, std)
	case "stat":
		return stat(ctx, c, rest, std)
	case "cat":
		return cat(ctx, c, rest, std)
	case "cp":
		return copyFile(ctx, c, rest, std)
	case "rm":
		return remove(ctx, c, rest, std)
	case "mkdir":
		return mkdir(ctx, c, rest, std)
	case "mv":
		return move(ctx, c, rest, std)
	case "edit":
		return edit(ctx, c, rest, std)
	case "download":
		return download(ctx, c, rest, std)
	case "ps":
		return processList(ctx, c, rest, std)
	case "logs":
		return processLogs(ctx, c, rest, std)
	case "kill":
		return processKill(ctx, c, rest, std)
	case "stats":
		return stats(ctx, c, rest, std)
	case "top":
		return top(ctx, c, rest, std)
	case "events":
		return eventsCommand(ctx, c, rest, std)
	case "pkg":
		return pkg(ctx, c, rest, std)
	case "envs":
		return envList(ctx, c, rest, std)
	case "user":
		return user(ctx, c, rest, std)
	default:
		return usagef("unknown command %q; see sandboxctl --help", cmd)
	}
}

// exitCode reports err on w and returns the status it exits with.
func exitCode(err error, w io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if st, ok := errors.AsType[exitStatus](err); ok {
		return int(st)
	}
	usage, isUsage := errors.AsType[*usageError](err)
	if !isUsage || !usage.reported {
		fmt.Fprintf(w, "sandboxctl: %v\n", err)
	}
	if isUsage {
		return exitUsage
	}
	return exitFailure
}

// defaultSocket prefers $SANDBOXD_SOCKET, then a development daemon's
// socket in the working directory, then the installed daemon's.
func defaultSocket(getenv func(string) string) string {
	if s := getenv("SANDBOXD_SOCKET"); s != "" {
		return s
	}
	const dev = "./var/run/sandboxd.sock"
	if _, err := os.Stat(dev); err == nil {
		return dev
	}
	return "/run/sandboxd.sock"
}

// newFlagSet returns a flag set whose --help prints usage and then the
// flags, and whose parse errors come back as usage errors.
func newFlagSet(name string, std stdio, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(std.err)
	fs.Usage = func() {
		fmt.Fprint(std.err, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. The flag package has already reported a bad
// flag with the usage, so that error only needs to exit 2.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return &usageError{msg: err.Error(), reported: true}
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
