package server

import (
	"net/http"
	"net/url"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	info := wireInfo(s.backend.Info(r.Context()))
	if info.Version == "" {
		info.Version = s.version
	}
	s.writeJSON(w, r, http.StatusOK, info)
	return nil
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateSessionRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	sess, err := s.backend.CreateSession(r.Context(), sandbox.CreateRequest{
		UserID: req.UserID, SessionID: req.SessionID, Limits: domainLimits(req.Limits),
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/sessions/"+url.PathEscape(sess.ID))
	s.writeJSON(w, r, http.StatusCreated, wireSession(sess))
	return nil
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	sessions, err := s.backend.ListSessions(r.Context(), r.URL.Query().Get("user_id"))
	if err != nil {
		return err
	}
	list := api.SessionList{Sessions: make([]api.Session, 0, len(sessions))}
	for _, sess := range sessions {
		list.Sessions = append(list.Sessions, wireSession(sess))
	}
	s.writeJSON(w, r, http.StatusOK, list)
	return nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.backend.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireSession(sess))
	return nil
}

// exec runs a command, answering with its result or, when the client
// accepts NDJSON, with its output as it comes.
func (s *Server) exec(w http.ResponseWriter, r *http.Request) error {
	var wire api.ExecRequest
	if err := s.decode(r, &wire); err != nil {
		return err
	}
	req, err := domainExec(wire)
	if err != nil {
		return err
	}
	if acceptsNDJSON(r) {
		return s.execStream(w, r, r.PathValue("id"), req)
	}
	res, err := s.backend.Exec(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireExec(res))
	return nil
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	keep, err := queryBool(r.URL.Query(), "keep_files")
	if err != nil {
		return err
	}
	res, err := s.backend.DeleteSession(r.Context(), r.PathValue("id"), keep)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireDelete(res))
	return nil
}
