package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// quota is a user's limits: the daemon's, or their quota.json's.
type quota struct {
	MaxSessions        int
	MaxWorkspaceMB     int64
	MaxFilesPerSession int
}

// readQuota reads a user's quota.json (the design's format: {"limits":
// {"max_sessions": N, "max_workspace_size_mb": M, "max_files_per_session":
// F}}); the fields it does not set keep def's values, and a missing file
// is def.
func readQuota(path string, def quota) (quota, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return def, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	var file struct {
		Limits struct {
			MaxSessions        *int   `json:"max_sessions"`
			MaxWorkspaceMB     *int64 `json:"max_workspace_size_mb"`
			MaxFilesPerSession *int   `json:"max_files_per_session"`
		} `json:"limits"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return def, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	q := def
	if v := file.Limits.MaxSessions; v != nil {
		q.MaxSessions = *v
	}
	if v := file.Limits.MaxWorkspaceMB; v != nil {
		q.MaxWorkspaceMB = *v
	}
	if v := file.Limits.MaxFilesPerSession; v != nil {
		q.MaxFilesPerSession = *v
	}
	return q, nil
}
