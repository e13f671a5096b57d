package sandbox

import "time"

// The domain's types of packages and base environments.

// Package is an installed distribution.
type Package struct {
	Name    string
	Version string
}

// InstalledPackage is a package an install put into the session.
type InstalledPackage struct {
	Name    string
	Version string
	// RequiredBy is "name version" of the package that needed it, or
	// empty for one that was asked for.
	RequiredBy string
}

// SatisfiedPackage is a requirement the session's environment already
// met, so nothing was installed for it.
type SatisfiedPackage struct {
	Name        string
	Version     string
	Requirement string
	RequiredBy  string
}

// InstallResult says what an install did.
type InstallResult struct {
	// Env is the base environment version the session runs on.
	Env       string
	Installed []InstalledPackage
	Satisfied []SatisfiedPackage
	// Pip is how pip ran; nil when nothing needed installing. A streamed
	// install leaves its Stdout and Stderr empty.
	Pip *ExecResult
}

// SessionPackages are the packages a session has beyond its base
// environment: installed by it, or at another version than the base's.
type SessionPackages struct {
	Env      string
	Packages []Package
}

// Env describes one version of the base environment.
type Env struct {
	ID      string
	Created time.Time
	// Python is the interpreter's version.
	Python string
	// Current: new sessions get this version.
	Current bool
	// Sessions counts the sessions that run on it.
	Sessions int
	// Declared are the requirements it was built to meet.
	Declared []string
	// Present are the declared packages it has; Missing the declared
	// requirements it does not meet, each with why.
	Present []Package
	Missing []MissingPackage
	// Packages are every distribution its python sees.
	Packages []Package
}

// MissingPackage is a declared requirement an environment does not meet.
type MissingPackage struct {
	Requirement string
	// Found is the version it has that does not satisfy the requirement.
	Found  string
	Reason string
}
