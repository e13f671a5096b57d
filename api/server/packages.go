package server

import (
	"context"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// installPackages installs into a session, answering with the result or,
// when the client accepts NDJSON, with pip's output as it comes and the
// result in a final "installed" event.
func (s *Server) installPackages(w http.ResponseWriter, r *http.Request) error {
	var req api.InstallPackagesRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if acceptsNDJSON(r) {
		return s.streamOutput(w, r, func(ctx context.Context, emit func(sandbox.Output) error) (any, error) {
			res, err := s.backend.InstallPackagesStream(ctx, id, req.Requirements, emit)
			if err != nil {
				return nil, err
			}
			wire := wireInstall(res)
			return api.PackageEvent{ExecEvent: api.ExecEvent{Type: api.EventInstalled}, Install: &wire}, nil
		})
	}
	res, err := s.backend.InstallPackages(r.Context(), id, req.Requirements)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireInstall(res))
	return nil
}

func (s *Server) listPackages(w http.ResponseWriter, r *http.Request) error {
	res, err := s.backend.ListPackages(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, api.SessionPackages{Env: res.Env, Packages: wirePackages(res.Packages)})
	return nil
}

func (s *Server) listEnvs(w http.ResponseWriter, r *http.Request) error {
	list, err := s.backend.ListEnvs(r.Context())
	if err != nil {
		return err
	}
	out := api.EnvList{Envs: make([]api.Env, 0, len(list))}
	for _, e := range list {
		out.Envs = append(out.Envs, wireEnv(e))
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

func wireInstall(r sandbox.InstallResult) api.InstallPackagesResult {
	out := api.InstallPackagesResult{Env: r.Env, Installed: []api.InstalledPackage{}, Satisfied: []api.SatisfiedPackage{}}
	for _, p := range r.Installed {
		out.Installed = append(out.Installed, api.InstalledPackage{Name: p.Name, Version: p.Version, RequiredBy: p.RequiredBy})
	}
	for _, p := range r.Satisfied {
		out.Satisfied = append(out.Satisfied, api.SatisfiedPackage{Name: p.Name, Version: p.Version, Requirement: p.Requirement, RequiredBy: p.RequiredBy})
	}
	if r.Pip != nil {
		pip := wireExec(*r.Pip)
		out.Pip = &pip
	}
	return out
}

func wirePackages(ps []sandbox.Package) []api.Package {
	out := make([]api.Package, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.Package{Name: p.Name, Version: p.Version})
	}
	return out
}

func wireEnv(e sandbox.Env) api.Env {
	out := api.Env{
		ID: e.ID, Created: e.Created, Python: e.Python, Current: e.Current, Sessions: e.Sessions,
		Declared: nonNil(e.Declared), Present: wirePackages(e.Present), Missing: []api.MissingPackage{},
		Packages: wirePackages(e.Packages),
	}
	for _, m := range e.Missing {
		out.Missing = append(out.Missing, api.MissingPackage{Requirement: m.Requirement, Found: m.Found, Reason: m.Reason})
	}
	return out
}

func wireEnvPtr(e *sandbox.Env) *api.Env {
	if e == nil {
		return nil
	}
	out := wireEnv(*e)
	return &out
}
