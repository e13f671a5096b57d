package server

import (
	"context"
	"io"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// Backend is what the handlers drive: *sandbox.Manager in the daemon, a fake
// in the handler tests. Errors wrap the api sentinels (api.ErrNotFound, …);
// the server maps them to HTTP statuses in errors.go.
type Backend interface {
	Info(ctx context.Context) api.Info
	CreateSession(ctx context.Context, req api.CreateSessionRequest) (api.Session, error)
	ListSessions(ctx context.Context, userID string) ([]api.Session, error)
	GetSession(ctx context.Context, id string) (api.Session, error)
	Exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error)
	// ExecStream runs a command like Exec but hands its output to emit as
	// it arrives; the result's Stdout and Stderr stay empty. emit is called
	// serially and never after ExecStream returns; an error from it stops
	// the output, and cancelling ctx kills the command's whole tree.
	ExecStream(ctx context.Context, id string, req api.ExecRequest, emit func(api.ExecEvent) error) (api.ExecResult, error)
	DeleteSession(ctx context.Context, id string, keepFiles bool) (api.DeleteSessionResult, error)
	FileBackend
	ProcessBackend
}

// ProcessBackend is the background processes of a session: commands
// started now and read from, or killed, later. pid is a process's ID
// within its session (api.Process.ID), not its PID.
type ProcessBackend interface {
	// StartProcess starts a background command; too many live ones is
	// ErrQuotaExceeded.
	StartProcess(ctx context.Context, id string, req api.StartProcessRequest) (api.Process, error)
	// ListProcesses lists the session's background processes, oldest
	// first.
	ListProcesses(ctx context.Context, id string) ([]api.Process, error)
	// ProcessOutput takes the output lines not read before, only those
	// the regular expression filter matches when it is not empty; an
	// invalid filter is ErrInvalidArgument.
	ProcessOutput(ctx context.Context, id, pid, filter string) (api.ProcessOutput, error)
	// KillProcess sends SIGTERM to the process's whole tree, SIGKILL after
	// grace (negative is ErrInvalidArgument), removes the process and
	// returns its unread output and final state.
	KillProcess(ctx context.Context, id, pid string, grace time.Duration) (api.ProcessOutput, error)
}

// FileBackend is the files API: every path is relative to the session's
// root ("workspace" or "shared"; an absolute path as the sandbox sees it is
// accepted too) and is resolved so that it can never leave that root.
type FileBackend interface {
	ListFiles(ctx context.Context, id, root, path string, recursive bool) (api.FileList, error)
	StatFile(ctx context.Context, id, root, path string) (api.FileInfo, error)
	// OpenFile opens a regular file for reading; the caller closes it.
	// A file over the daemon's size cap is ErrTooLarge.
	OpenFile(ctx context.Context, id, root, path string) (File, error)
	ReadText(ctx context.Context, id, root, path string, line, limit int) (api.TextFile, error)
	// WriteFile stores body atomically; a body over the size cap is
	// ErrTooLarge and leaves nothing behind.
	WriteFile(ctx context.Context, id, root, path string, body io.Reader, mkdirs bool) (api.WriteResult, error)
	EditFile(ctx context.Context, id, root string, req api.EditRequest) (api.EditResult, error)
	RemoveFile(ctx context.Context, id, root, path string, recursive bool) error
	Mkdir(ctx context.Context, id, root string, req api.MkdirRequest) (api.FileInfo, error)
	MoveFile(ctx context.Context, id, root string, req api.MoveRequest) (api.FileInfo, error)
	// OpenOutput opens shared_files/outputs/<name> of a user, the
	// design's download.
	OpenOutput(ctx context.Context, userID, name string) (File, error)
	// MaxFileBytes is the size cap of uploads and reads.
	MaxFileBytes() int64
}

// File is an open regular file with what the routes report of it.
type File interface {
	io.ReadSeekCloser
	Info() api.FileInfo
}
