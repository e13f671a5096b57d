package envs

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

//go:embed probe.py
var probeScript string

// MaxProbeOutput bounds the probe's output the daemon reads; the probe of
// a session runs in a hostile sandbox.
const MaxProbeOutput = 4 << 20

// maxProbeDists bounds the distributions one probe may report.
const maxProbeDists = 10000

// ProbeArgs is the argv that prints what the interpreter python sees, as
// JSON (see ParseProbe): python -I -c <script>. Run it in the build
// sandbox for the manifest, or in a session to list what it has.
func ProbeArgs(python string) []string {
	return []string{python, "-I", "-c", probeScript}
}

// Probe is what an interpreter reported about itself.
type Probe struct {
	// Python is the interpreter's version ("3.11.2").
	Python string `json:"python"`
	// Markers are its PEP 508 marker values.
	Markers pyreq.Environment `json:"markers"`
	// Tags are the wheel tags it supports, most preferred first.
	Tags []string `json:"tags"`
	// Packages maps the normalised name of every distribution it sees to
	// the one it would import (the first on sys.path).
	Packages map[string]Package `json:"packages"`
}

// Package is one installed distribution.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type probeJSON struct {
	Probe         int               `json:"probe"`
	Python        string            `json:"python"`
	Markers       map[string]string `json:"markers"`
	Tags          []string          `json:"tags"`
	Distributions [][2]string       `json:"distributions"`
}

// ErrProbe is wrapped by every error about probe output.
var ErrProbe = errors.New("bad probe output")

// ParseProbe parses the probe's stdout. The output may come from a
// hostile session: it is size-bounded, and names and versions that do
// not parse are dropped.
func ParseProbe(out []byte) (Probe, error) {
	if len(out) > MaxProbeOutput {
		return Probe{}, fmt.Errorf("%w: larger than %d bytes", ErrProbe, MaxProbeOutput)
	}
	var pj probeJSON
	if err := json.Unmarshal(out, &pj); err != nil {
		return Probe{}, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	if pj.Probe != 1 {
		return Probe{}, fmt.Errorf("%w: format %d, want 1", ErrProbe, pj.Probe)
	}
	if len(pj.Distributions) > maxProbeDists {
		return Probe{}, fmt.Errorf("%w: more than %d distributions", ErrProbe, maxProbeDists)
	}
	if _, err := pyreq.ParseVersion(pj.Python); err != nil {
		return Probe{}, fmt.Errorf("%w: python version: %w", ErrProbe, err)
	}
	p := Probe{
		Python:   pj.Python,
		Markers:  pyreq.Environment(pj.Markers),
		Tags:     pj.Tags,
		Packages: map[string]Package{},
	}
	for _, d := range pj.Distributions {
		name, version := d[0], d[1]
		if !pyreq.ValidName(name) {
			continue
		}
		if _, err := pyreq.ParseVersion(version); err != nil {
			continue
		}
		key := pyreq.Normalize(name)
		if _, seen := p.Packages[key]; seen {
			continue
		}
		p.Packages[key] = Package{Name: name, Version: version}
	}
	return p, nil
}

// Installed is the probe as install planning takes it.
func (p Probe) Installed() packages.Installed {
	have := make(map[string]string, len(p.Packages))
	for key, pk := range p.Packages {
		have[key] = pk.Version
	}
	return packages.Installed{Packages: have, Markers: p.Markers, Tags: p.Tags}
}

// Beyond lists the distributions p has that base does not, or has at
// another version: what a session installed over its base env.
func (p Probe) Beyond(base Probe) []Package {
	var out []Package
	for key, pk := range p.Packages {
		if base.Packages[key].Version != pk.Version {
			out = append(out, pk)
		}
	}
	sort.Slice(out, func(i, j int) bool { return pyreq.Normalize(out[i].Name) < pyreq.Normalize(out[j].Name) })
	return out
}
