package api

import "time"

// CodePackageNotAllowed: the package allow-list refused a package, or a
// version of one, that an install asked for or needed (HTTP 403).
const CodePackageNotAllowed = "package_not_allowed"

// ErrPackageNotAllowed is the sentinel of CodePackageNotAllowed; the
// message names the package and the allow-list's line.
var ErrPackageNotAllowed = &Error{Code: CodePackageNotAllowed, Message: "package not allowed"}

// EventInstalled ends a streamed install that succeeded; its event
// carries the result in Install.
const EventInstalled = "installed"

// InstallPackagesRequest is the body of POST /v1/sessions/{id}/packages:
// PEP 508 requirements as pip takes them ("pandas>=2,<3", "requests").
type InstallPackagesRequest struct {
	Requirements []string `json:"requirements"`
}

// InstallPackagesResult says what an install did.
type InstallPackagesResult struct {
	// Env is the base environment version the session runs on.
	Env string `json:"env"`
	// Installed are the packages installed into the session's own layer,
	// dependencies included.
	Installed []InstalledPackage `json:"installed"`
	// Satisfied are requirements the environment already met.
	Satisfied []SatisfiedPackage `json:"satisfied"`
	// Pip is how pip ran (its output empty when streamed); absent when
	// nothing needed installing.
	Pip *ExecResult `json:"pip,omitempty"`
}

// InstalledPackage is a package an install put into the session.
type InstalledPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// RequiredBy is "name version" of the package that needed it; absent
	// for one that was asked for.
	RequiredBy string `json:"required_by,omitempty"`
}

// SatisfiedPackage is a requirement the environment already met.
type SatisfiedPackage struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Requirement string `json:"requirement"`
	RequiredBy  string `json:"required_by,omitempty"`
}

// PackageEvent is one line of a streamed install (Accept:
// application/x-ndjson): pip's output as "stdout" and "stderr" events, as
// exec's, then an "installed" event with Install, or an "error" event.
type PackageEvent struct {
	ExecEvent
	Install *InstallPackagesResult `json:"install,omitempty"`
}

// Package is an installed distribution.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// SessionPackages is the answer of GET /v1/sessions/{id}/packages: what
// the session has beyond its base environment.
type SessionPackages struct {
	Env      string    `json:"env"`
	Packages []Package `json:"packages"`
}

// Env describes one version of the base environment.
type Env struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Python is the interpreter's version.
	Python string `json:"python"`
	// Current: new sessions get this version.
	Current bool `json:"current"`
	// Sessions counts the sessions running on it.
	Sessions int `json:"sessions"`
	// Declared are the requirements it was built to meet; Present the
	// declared packages it has; Missing those it lacks, each with why.
	Declared []string         `json:"declared"`
	Present  []Package        `json:"present"`
	Missing  []MissingPackage `json:"missing"`
	// Packages are every distribution its python sees.
	Packages []Package `json:"packages"`
}

// MissingPackage is a declared requirement an environment does not meet.
type MissingPackage struct {
	Requirement string `json:"requirement"`
	// Found is the version it has, which does not satisfy Requirement.
	Found  string `json:"found,omitempty"`
	Reason string `json:"reason"`
}

// EnvList is the answer of GET /v1/envs, oldest first.
type EnvList struct {
	Envs []Env `json:"envs"`
}
