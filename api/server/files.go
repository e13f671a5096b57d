package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// queryRoot is the files root a request names, the workspace when it
// names none; the backend checks it.
func queryRoot(r *http.Request) sandbox.Root {
	if q := r.URL.Query(); q.Has("root") {
		return sandbox.Root(q.Get("root"))
	}
	return sandbox.RootWorkspace
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	recursive, err := queryBool(q, "recursive")
	if err != nil {
		return err
	}
	list, err := s.backend.ListFiles(r.Context(), r.PathValue("id"), queryRoot(r), q.Get("path"), recursive)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireFileList(list))
	return nil
}

func (s *Server) statFile(w http.ResponseWriter, r *http.Request) error {
	info, err := s.backend.StatFile(r.Context(), r.PathValue("id"), queryRoot(r), r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireFileInfo(info))
	return nil
}

// readFile streams length bytes (all when 0) from offset. The cap applies
// to what is sent, so a slice of a larger file passes if the backend opens
// it.
func (s *Server) readFile(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	offset, err := queryCount(q, "offset", 0)
	if err != nil {
		return err
	}
	length, err := queryCount(q, "length", 0)
	if err != nil {
		return err
	}
	p := q.Get("path")
	f, err := s.backend.OpenFile(r.Context(), r.PathValue("id"), queryRoot(r), p)
	if err != nil {
		return err
	}
	defer f.Close()
	if offset > f.Info.Size {
		return fmt.Errorf("offset %d is past the end of %q (%d bytes): %w", offset, p, f.Info.Size, api.ErrInvalidArgument)
	}
	n := f.Info.Size - offset
	if length > 0 {
		n = min(n, length)
	}
	if limit := s.backend.MaxFileBytes(); n > limit {
		return fmt.Errorf("%q: %d bytes to send exceed the limit of %d: %w", p, n, limit, api.ErrTooLarge)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("%q: seek to %d: %w", p, offset, err)
	}
	w.Header().Set("X-Sandboxd-Size", strconv.FormatInt(f.Info.Size, 10))
	s.stream(w, r, f, n, "application/octet-stream", f.Info.ModTime)
	return nil
}

func (s *Server) readText(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	line, err := queryInt(q, "line", 1)
	if err != nil {
		return err
	}
	limit, err := queryInt(q, "limit", 0)
	if err != nil {
		return err
	}
	text, err := s.backend.ReadText(r.Context(), r.PathValue("id"), queryRoot(r), q.Get("path"), line, limit)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireText(text))
	return nil
}

// writeFile streams the body, whatever its Content-Type, to the backend.
// logRequests limits it to the backend's file cap.
func (s *Server) writeFile(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	mkdirs, err := queryBool(q, "mkdirs")
	if err != nil {
		return err
	}
	res, err := s.backend.WriteFile(r.Context(), r.PathValue("id"), queryRoot(r), q.Get("path"), r.Body, mkdirs)
	if err != nil {
		return uploadError(err)
	}
	s.writeJSON(w, r, http.StatusOK, wireWrite(res))
	return nil
}

// uploadError makes an upload cut at the body limit a 413 even when the
// backend passed the reader's error on without translating it.
func uploadError(err error) error {
	if _, cut := errors.AsType[*http.MaxBytesError](err); cut && !errors.Is(err, sandbox.ErrTooLarge) {
		return fmt.Errorf("%w: %w", err, api.ErrTooLarge)
	}
	return err
}

func (s *Server) editFile(w http.ResponseWriter, r *http.Request) error {
	var req api.EditRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	res, err := s.backend.EditFile(r.Context(), r.PathValue("id"), queryRoot(r),
		sandbox.EditRequest{Path: req.Path, Old: req.Old, New: req.New, Count: req.Count})
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireEdit(res))
	return nil
}

func (s *Server) removeFile(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	recursive, err := queryBool(q, "recursive")
	if err != nil {
		return err
	}
	if err := s.backend.RemoveFile(r.Context(), r.PathValue("id"), queryRoot(r), q.Get("path"), recursive); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) mkdir(w http.ResponseWriter, r *http.Request) error {
	var req api.MkdirRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	info, err := s.backend.Mkdir(r.Context(), r.PathValue("id"), queryRoot(r), req.Path, req.Parents)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusCreated, wireFileInfo(info))
	return nil
}

func (s *Server) moveFile(w http.ResponseWriter, r *http.Request) error {
	var req api.MoveRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	info, err := s.backend.MoveFile(r.Context(), r.PathValue("id"), queryRoot(r), req.From, req.To, req.Overwrite)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireFileInfo(info))
	return nil
}

// stream answers with the next n bytes of body. The status is out once
// copying starts, so a failure is only logged; net/http then drops the
// connection, as the body falls short of its Content-Length.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, body io.Reader, n int64, contentType string, modTime time.Time) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	if !modTime.IsZero() {
		h.Set("Last-Modified", modTime.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.CopyN(w, body, n); err != nil {
		s.log.WarnContext(r.Context(), "stream file",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
}
