package envs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

// Step is one command of a build, to run in the build sandbox.
type Step struct {
	Name  string
	Args  []string
	Stdin []byte
}

// Runner runs a step in the build sandbox (the venv's directory bound
// read-write at BuildConfig.VenvDir, the presented cache read-only at
// BuildConfig.WheelsDir, no network) and returns its stdout; a failure or
// non-zero exit is an error that carries the output.
type Runner func(ctx context.Context, s Step) (stdout []byte, err error)

// BuildConfig says how to build an env.
type BuildConfig struct {
	// Python is the host interpreter the venv is made from.
	Python string
	// VenvDir is the venv's path in the sandboxes (packages.VenvDir).
	VenvDir string
	// WheelsDir is where the presented cache is bound (packages.WheelsDir).
	WheelsDir string
	// Declared is the package list (DefaultDeclared unless configured).
	Declared []string
}

func (c BuildConfig) venvPython() string { return path.Join(c.VenvDir, "bin", "python") }

// VenvStep creates the venv over the host's site-packages, so Debian's
// python3-* packages are importable in it.
func VenvStep(cfg BuildConfig) Step {
	return Step{Name: "venv", Args: []string{cfg.Python, "-m", "venv", "--system-site-packages", cfg.VenvDir}}
}

// ProbeStep runs the probe with the venv's python.
func ProbeStep(cfg BuildConfig) Step {
	return Step{Name: "probe", Args: ProbeArgs(cfg.venvPython())}
}

// File is a file the build writes into the venv.
type File struct {
	Path    string `json:"path"`
	Mode    string `json:"mode"`
	Content string `json:"content"`
}

// BaseFiles are the files the base env carries: the venv's pip.conf
// (install only from WheelsDir) and the pip shim as bin/pip, bin/pip3
// and bin/pip<pythonVersion> ("3.11").
func BaseFiles(cfg BuildConfig, pythonVersion string) []File {
	shim := string(packages.PipShim(cfg.venvPython(), packages.AllowListInSandbox(cfg.WheelsDir)))
	files := []File{{Path: path.Join(cfg.VenvDir, "pip.conf"), Mode: "0644", Content: string(packages.PipConf(cfg.WheelsDir))}}
	for _, name := range []string{"pip", "pip3", "pip" + pythonVersion} {
		files = append(files, File{Path: path.Join(cfg.VenvDir, "bin", name), Mode: "0755", Content: shim})
	}
	return files
}

// writeFilesScript writes the files given on stdin (JSON [File]), each
// through a temporary file and a rename.
const writeFilesScript = `import json, os, sys
for f in json.load(sys.stdin):
    tmp = f["path"] + ".sandboxd-tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(f["content"])
    os.chmod(tmp, int(f["mode"], 8))
    os.replace(tmp, f["path"])
`

// FilesStep writes files inside the build sandbox, so the daemon never
// writes into a directory a sandbox has written.
func FilesStep(cfg BuildConfig, files []File) (Step, error) {
	in, err := json.Marshal(files)
	if err != nil {
		return Step{}, fmt.Errorf("env build: %w", err)
	}
	return Step{Name: "files", Args: []string{cfg.venvPython(), "-I", "-c", writeFilesScript}, Stdin: in}, nil
}

// InstallStep installs a plan with the venv's pip from WheelsDir.
func InstallStep(cfg BuildConfig, p packages.Plan) Step {
	return Step{Name: "install", Args: p.Command(cfg.venvPython(), cfg.WheelsDir), Stdin: p.Requirements()}
}

// Build builds env id in the build sandbox run drives: venv, probe, base
// files, the declared packages the host does not provide installed from
// the cache (as Plan allows), and a final probe for the manifest. The
// caller made BuildDir(id), runs each step with it at cfg.VenvDir, and
// commits the returned manifest. A declared package that cannot be
// installed is not an error: the manifest lists it as missing, with why.
func Build(ctx context.Context, cfg BuildConfig, run Runner, cache *packages.Cache, id string, now time.Time) (Manifest, error) {
	if _, err := run(ctx, VenvStep(cfg)); err != nil {
		return Manifest{}, fmt.Errorf("env build %s: %w", id, err)
	}
	first, err := probe(ctx, cfg, run)
	if err != nil {
		return Manifest{}, fmt.Errorf("env build %s: %w", id, err)
	}
	files, err := FilesStep(cfg, BaseFiles(cfg, first.Markers["python_version"]))
	if err != nil {
		return Manifest{}, err
	}
	if _, err := run(ctx, files); err != nil {
		return Manifest{}, fmt.Errorf("env build %s: %w", id, err)
	}
	why := map[string]string{}
	missing, err := missingDeclared(cfg.Declared, first)
	if err != nil {
		return Manifest{}, fmt.Errorf("env build %s: %w", id, err)
	}
	// Each is planned alone first, so one that cannot come from the
	// cache does not keep the others out.
	var installable []string
	var keys []string
	for _, req := range missing {
		if _, err := cache.Plan([]string{req.String()}, first.Installed()); err != nil {
			why[req.Key()] = "from the package cache: " + err.Error()
			continue
		}
		installable = append(installable, req.String())
		keys = append(keys, req.Key())
	}
	if len(installable) > 0 {
		p, err := cache.Plan(installable, first.Installed())
		if err == nil {
			_, err = run(ctx, InstallStep(cfg, p))
		}
		if err != nil {
			for _, key := range keys {
				why[key] = "installing from the package cache: " + err.Error()
			}
		}
	}
	final, err := probe(ctx, cfg, run)
	if err != nil {
		return Manifest{}, fmt.Errorf("env build %s: %w", id, err)
	}
	return NewManifest(id, now, cfg.Declared, final, why)
}

func probe(ctx context.Context, cfg BuildConfig, run Runner) (Probe, error) {
	out, err := run(ctx, ProbeStep(cfg))
	if err != nil {
		return Probe{}, err
	}
	return ParseProbe(out)
}

// missingDeclared are the declared requirements the probed env does not
// meet.
func missingDeclared(declared []string, p Probe) ([]pyreq.Requirement, error) {
	var out []pyreq.Requirement
	var errs []error
	for _, d := range declared {
		req, err := pyreq.ParseRequirement(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("declared package: %w", err))
			continue
		}
		if _, _, ok := meets(req, p); !ok {
			out = append(out, req)
		}
	}
	return out, errors.Join(errs...)
}

// meets says whether the probed env meets req, and what it has of it.
func meets(req pyreq.Requirement, p Probe) (have Package, found, ok bool) {
	have, found = p.Packages[req.Key()]
	if !found {
		return Package{}, false, false
	}
	v, err := pyreq.ParseVersion(have.Version)
	return have, true, err == nil && req.Specifier.ContainsAny(v)
}
