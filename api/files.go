package api

import "time"

// File roots: which tree a files route acts on.
const (
	// RootWorkspace is the session's files, /workspace inside the sandbox.
	RootWorkspace = "workspace"
	// RootShared is the user's shared_files, /workspace/shared inside.
	RootShared = "shared"
)

// File types as FileInfo.Type reports them.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
	TypeOther   = "other" // FIFO, socket or device: never read or written
)

// FileInfo describes one directory entry; symlinks are reported, not
// followed.
type FileInfo struct {
	Name string `json:"name"`
	// Path is relative to the root.
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is the permission bits in octal, e.g. "0644".
	Mode    string    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	// LinkTarget is a symlink's target, as stored.
	LinkTarget string `json:"link_target,omitempty"`
}

// FileList is the answer of GET …/files.
type FileList struct {
	Root    string     `json:"root"`
	Path    string     `json:"path"`
	Entries []FileInfo `json:"entries"`
	// Truncated is set when a recursive listing stopped at the daemon's
	// entry limit.
	Truncated bool `json:"truncated"`
}

// TextLine is one line of a text file, numbered from 1.
type TextLine struct {
	Number int    `json:"n"`
	Text   string `json:"text"`
}

// TextFile is the answer of GET …/files/text: the requested lines, without
// their line endings, and the file's total line count.
type TextFile struct {
	Path       string     `json:"path"`
	Lines      []TextLine `json:"lines"`
	TotalLines int        `json:"total_lines"`
}

// WriteResult is the answer of PUT …/files/content.
type WriteResult struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// EditRequest is the body of POST …/files/edit: replace Old by New. With
// Count 0, Old must occur exactly once; otherwise exactly Count times.
type EditRequest struct {
	Path  string `json:"path"`
	Old   string `json:"old"`
	New   string `json:"new"`
	Count int    `json:"count,omitempty"`
}

// EditResult is the answer of POST …/files/edit.
type EditResult struct {
	Path         string `json:"path"`
	Replacements int    `json:"replacements"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
}

// MkdirRequest is the body of POST …/files/mkdir.
type MkdirRequest struct {
	Path string `json:"path"`
	// Parents creates missing parents and accepts an existing directory.
	Parents bool `json:"parents,omitempty"`
}

// MoveRequest is the body of POST …/files/move; both paths are in the same
// root. An existing destination is refused unless Overwrite is set.
type MoveRequest struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite,omitempty"`
}
