package server

import (
	"context"

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
	DeleteSession(ctx context.Context, id string, keepFiles bool) (api.DeleteSessionResult, error)
}
