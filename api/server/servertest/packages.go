package servertest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/sandboxd/sandboxd/sandbox"
)

// Packages install nothing: an install of an allowed name records it, at
// the version a "==" pin names or "1.0", and a streamed one emits a line
// of output per package. The allow-list is SetAllowed's; the base
// environment versions are SetEnvs'.

// packageState is the fake's packages; Backend.mu guards it.
type packageState struct {
	allowed   []string
	installed map[string][]sandbox.Package // by session
	envs      []sandbox.Env
}

// fakeRequirement is what the fake takes of PEP 508: a name and an
// optional "==" pin.
var fakeRequirement = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)(?:==([0-9][0-9.]*))?$`)

// SetAllowed makes names the fake's allow-list: installs of anything else
// fail with sandbox.ErrPackageNotAllowed, as the daemon's.
func (b *Backend) SetAllowed(names ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pkgs.allowed = slices.Clone(names)
}

// SetEnvs sets the base environment versions ListEnvs lists; the one
// marked Current is Info's.
func (b *Backend) SetEnvs(envs ...sandbox.Env) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pkgs.envs = slices.Clone(envs)
}

// currentEnv is the Current version, or nil; the caller holds b.mu.
func (b *Backend) currentEnv() *sandbox.Env {
	for _, e := range b.pkgs.envs {
		if e.Current {
			return &e
		}
	}
	return nil
}

// InstallPackages implements server.PackageBackend.
func (b *Backend) InstallPackages(_ context.Context, id string, requirements []string) (sandbox.InstallResult, error) {
	var out strings.Builder
	res, err := b.install("InstallPackages", id, requirements, func(o sandbox.Output) error {
		out.Write(o.Data)
		return nil
	})
	if err == nil && res.Pip != nil {
		res.Pip.Stdout = []byte(out.String())
	}
	return res, err
}

// InstallPackagesStream implements server.PackageBackend.
func (b *Backend) InstallPackagesStream(_ context.Context, id string, requirements []string, emit func(sandbox.Output) error) (sandbox.InstallResult, error) {
	return b.install("InstallPackagesStream", id, requirements, emit)
}

func (b *Backend) install(method, id string, requirements []string, emit func(sandbox.Output) error) (sandbox.InstallResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call(method); err != nil {
		return sandbox.InstallResult{}, err
	}
	if len(requirements) == 0 {
		return sandbox.InstallResult{}, fmt.Errorf("%w: requirements: at least one is needed", sandbox.ErrInvalid)
	}
	var picks []sandbox.Package
	for _, r := range requirements {
		m := fakeRequirement.FindStringSubmatch(r)
		if m == nil {
			return sandbox.InstallResult{}, fmt.Errorf("%w: requirements: %q is not a requirement", sandbox.ErrInvalid, r)
		}
		if !slices.Contains(b.pkgs.allowed, m[1]) {
			return sandbox.InstallResult{}, fmt.Errorf("%w: session %q: %s is not on the package allow-list", sandbox.ErrPackageNotAllowed, id, m[1])
		}
		version := m[2]
		if version == "" {
			version = "1.0"
		}
		picks = append(picks, sandbox.Package{Name: m[1], Version: version})
	}
	if _, err := b.running(id); err != nil {
		return sandbox.InstallResult{}, err
	}
	res := sandbox.InstallResult{Env: b.envOf(), Installed: []sandbox.InstalledPackage{}, Satisfied: []sandbox.SatisfiedPackage{}, Pip: &sandbox.ExecResult{}}
	for _, p := range picks {
		if err := emit(sandbox.Output{Stream: sandbox.Stdout, Data: []byte("Installing " + p.Name + "-" + p.Version + "\n")}); err != nil {
			return sandbox.InstallResult{}, fmt.Errorf("install: emit output: %w", err)
		}
		res.Installed = append(res.Installed, sandbox.InstalledPackage{Name: p.Name, Version: p.Version})
	}
	if b.pkgs.installed == nil {
		b.pkgs.installed = map[string][]sandbox.Package{}
	}
	b.pkgs.installed[id] = append(b.pkgs.installed[id], picks...)
	return res, nil
}

// envOf is the current version's id, or ""; the caller holds b.mu.
func (b *Backend) envOf() string {
	if e := b.currentEnv(); e != nil {
		return e.ID
	}
	return ""
}

// ListPackages implements server.PackageBackend.
func (b *Backend) ListPackages(_ context.Context, id string) (sandbox.SessionPackages, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("ListPackages"); err != nil {
		return sandbox.SessionPackages{}, err
	}
	if _, err := b.running(id); err != nil {
		return sandbox.SessionPackages{}, err
	}
	return sandbox.SessionPackages{Env: b.envOf(), Packages: slices.Clone(b.pkgs.installed[id])}, nil
}

// ListEnvs implements server.PackageBackend.
func (b *Backend) ListEnvs(context.Context) ([]sandbox.Env, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("ListEnvs"); err != nil {
		return nil, err
	}
	return slices.Clone(b.pkgs.envs), nil
}
