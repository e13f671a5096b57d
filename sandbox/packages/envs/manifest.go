package envs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"

	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

// DefaultDeclared is the design's package list for the base env.
func DefaultDeclared() []string {
	return []string{"pandas", "numpy", "reportlab", "python-pptx", "openpyxl", "matplotlib", "requests"}
}

// Manifest describes one built environment.
type Manifest struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Declared is the configured package list (PEP 508 requirements).
	Declared []string `json:"declared"`
	// Present are the declared packages the env has, as installed.
	Present []Package `json:"present"`
	// Missing are the declared requirements it does not meet.
	Missing []Missing `json:"missing"`
	// Env is the final probe: interpreter, markers, tags, and every
	// distribution the env's python sees.
	Env Probe `json:"environment"`
}

// Missing is a declared requirement the env does not meet.
type Missing struct {
	Requirement string `json:"requirement"`
	// Found is the version present that does not satisfy it, if any.
	Found  string `json:"found,omitempty"`
	Reason string `json:"reason"`
}

// NewManifest checks the declared requirements against the probe of the
// built env. why gives, by normalised name, the reason a package could
// not be installed from the cache, for the Missing entries.
func NewManifest(id string, created time.Time, declared []string, env Probe, why map[string]string) (Manifest, error) {
	if !ValidID(id) {
		return Manifest{}, fmt.Errorf("env: invalid version id %q", id)
	}
	m := Manifest{ID: id, Created: created.UTC(), Declared: declared, Present: []Package{}, Missing: []Missing{}, Env: env}
	for _, d := range declared {
		req, err := pyreq.ParseRequirement(d)
		if err != nil {
			return Manifest{}, fmt.Errorf("env: declared package: %w", err)
		}
		have, found, ok := meets(req, env)
		if ok {
			m.Present = append(m.Present, have)
			continue
		}
		miss := Missing{Requirement: d, Reason: "not installed"}
		if found {
			miss.Found = have.Version
			miss.Reason = fmt.Sprintf("version %s does not satisfy %s", have.Version, req)
		}
		if r := why[req.Key()]; r != "" {
			miss.Reason += "; " + r
		}
		m.Missing = append(m.Missing, miss)
	}
	return m, nil
}

// WriteManifest writes m to path atomically.
func WriteManifest(path string, m Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("env manifest: %w", err)
	}
	if err := renameio.WriteFile(path, append(data, '\n'), 0o644,
		renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o644)); err != nil {
		return fmt.Errorf("env manifest: %w", err)
	}
	return nil
}

// ErrManifest is wrapped by errors about an unreadable manifest.
var ErrManifest = errors.New("bad env manifest")

// ReadManifest reads the manifest at path.
func ReadManifest(path string) (Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("env manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %w", ErrManifest, path, err)
	}
	if !ValidID(m.ID) {
		return Manifest{}, fmt.Errorf("%w: %s: invalid id %q", ErrManifest, path, m.ID)
	}
	return m, nil
}
