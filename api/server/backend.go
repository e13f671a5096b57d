package server

import (
	"context"
	"io"
	"time"

	"github.com/sandboxd/sandboxd/sandbox"
)

// Backend is what the handlers drive: *sandbox.Manager in the daemon, the
// fake in servertest for the tests. It speaks the domain's types; the
// handlers convert them to and from the wire (convert.go) and map its
// errors, which wrap the sandbox error kinds, to statuses (errors.go).
type Backend interface {
	Info(ctx context.Context) sandbox.Info
	CreateSession(ctx context.Context, req sandbox.CreateRequest) (sandbox.Session, error)
	ListSessions(ctx context.Context, userID string) ([]sandbox.Session, error)
	GetSession(ctx context.Context, id string) (sandbox.Session, error)
	DeleteSession(ctx context.Context, id string, keepFiles bool) (sandbox.DeleteResult, error)
	Exec(ctx context.Context, id string, req sandbox.ExecRequest) (sandbox.ExecResult, error)
	// ExecStream runs a command like Exec but hands its output to emit as
	// it arrives; the result's Stdout and Stderr stay empty. emit is called
	// serially and never after ExecStream returns; an error from it stops
	// the output, and cancelling ctx kills the command's whole tree.
	ExecStream(ctx context.Context, id string, req sandbox.ExecRequest, emit func(sandbox.Output) error) (sandbox.ExecResult, error)
	ProcessBackend
	FileBackend
	ObserveBackend
	PackageBackend
	UserBackend
}

// ProcessBackend is the background processes of a session: commands
// started now and read from, or killed, later. pid is a process's ID
// within its session, not its PID.
type ProcessBackend interface {
	StartProcess(ctx context.Context, id string, cmd sandbox.Command) (sandbox.Process, error)
	ListProcesses(ctx context.Context, id string) ([]sandbox.Process, error)
	// ProcessOutput takes the output lines not read before, only those
	// the regular expression filter matches when it is not empty.
	ProcessOutput(ctx context.Context, id, pid, filter string) (sandbox.ProcessOutput, error)
	// KillProcess sends SIGTERM to the process's whole tree, SIGKILL after
	// grace, removes the process and returns its unread output.
	KillProcess(ctx context.Context, id, pid string, grace time.Duration) (sandbox.ProcessOutput, error)
}

// FileBackend is the files API: every path is relative to the session's
// root (an absolute path as the sandbox sees it is accepted too) and is
// resolved so that it can never leave that root.
type FileBackend interface {
	ListFiles(ctx context.Context, id string, root sandbox.Root, path string, recursive bool) (sandbox.FileList, error)
	StatFile(ctx context.Context, id string, root sandbox.Root, path string) (sandbox.FileInfo, error)
	// OpenFile opens a regular file for reading; the caller closes it.
	OpenFile(ctx context.Context, id string, root sandbox.Root, path string) (sandbox.File, error)
	ReadText(ctx context.Context, id string, root sandbox.Root, path string, line, limit int) (sandbox.TextFile, error)
	// WriteFile stores body atomically; a body over the size cap is
	// ErrTooLarge and leaves nothing behind.
	WriteFile(ctx context.Context, id string, root sandbox.Root, path string, body io.Reader, mkdirs bool) (sandbox.WriteResult, error)
	EditFile(ctx context.Context, id string, root sandbox.Root, req sandbox.EditRequest) (sandbox.EditResult, error)
	RemoveFile(ctx context.Context, id string, root sandbox.Root, path string, recursive bool) error
	Mkdir(ctx context.Context, id string, root sandbox.Root, path string, parents bool) (sandbox.FileInfo, error)
	MoveFile(ctx context.Context, id string, root sandbox.Root, from, to string, overwrite bool) (sandbox.FileInfo, error)
	// OpenOutput opens shared_files/outputs/<name> of a user, the design's
	// download.
	OpenOutput(ctx context.Context, userID, name string) (sandbox.File, error)
	// MaxFileBytes is the size cap of uploads and reads.
	MaxFileBytes() int64
}

// PackageBackend is the packages of sessions and the versions of the base
// environment they run on.
type PackageBackend interface {
	// InstallPackages installs PEP 508 requirements into the session's
	// own layer, from the package cache, as the allow-list allows.
	InstallPackages(ctx context.Context, id string, requirements []string) (sandbox.InstallResult, error)
	// InstallPackagesStream installs like InstallPackages, handing pip's
	// output to emit as ExecStream does.
	InstallPackagesStream(ctx context.Context, id string, requirements []string, emit func(sandbox.Output) error) (sandbox.InstallResult, error)
	// ListPackages lists what the session has beyond its base env.
	ListPackages(ctx context.Context, id string) (sandbox.SessionPackages, error)
	// ListEnvs lists the versions of the base environment, oldest first.
	ListEnvs(ctx context.Context) ([]sandbox.Env, error)
}
