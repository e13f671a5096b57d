package server

import (
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// defaultGrace is how long a killed process has between SIGTERM and
// SIGKILL when the request does not say.
const defaultGrace = 5 * time.Second

func (s *Server) startProcess(w http.ResponseWriter, r *http.Request) error {
	var req api.StartProcessRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	p, err := s.backend.StartProcess(r.Context(), id, domainCommand(req.Argv, req.Command, req.Cwd, req.Env))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/sessions/"+url.PathEscape(id)+"/processes/"+url.PathEscape(p.ID))
	s.writeJSON(w, r, http.StatusCreated, wireProcess(p))
	return nil
}

func (s *Server) listProcesses(w http.ResponseWriter, r *http.Request) error {
	procs, err := s.backend.ListProcesses(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	list := api.ProcessList{Processes: make([]api.Process, 0, len(procs))}
	for _, p := range procs {
		list.Processes = append(list.Processes, wireProcess(p))
	}
	s.writeJSON(w, r, http.StatusOK, list)
	return nil
}

// processOutput passes the filter on unchecked: the backend compiles it
// and refuses an invalid one.
func (s *Server) processOutput(w http.ResponseWriter, r *http.Request) error {
	out, err := s.backend.ProcessOutput(r.Context(), r.PathValue("id"), r.PathValue("pid"), r.URL.Query().Get("filter"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireOutput(out))
	return nil
}

func (s *Server) killProcess(w http.ResponseWriter, r *http.Request) error {
	grace, err := queryDuration(r.URL.Query(), "grace", defaultGrace)
	if err != nil {
		return err
	}
	out, err := s.backend.KillProcess(r.Context(), r.PathValue("id"), r.PathValue("pid"), grace)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireOutput(out))
	return nil
}
