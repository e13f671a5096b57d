package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/mounts/quota"
	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"
)

// Check is one thing the host must offer for sessions to be confined.
type Check struct {
	Name string
	// Err says what is missing, or is nil.
	Err    error
	Detail string
	// Optional checks say what the daemon does without a feature when
	// they fail, instead of keeping it from starting.
	Optional bool
}

// Doctor checks that this host can sandbox: root, cgroups with the cpu,
// memory and pids controllers, the namespaces, overlayfs and the
// Python the base venv is made from. The daemon refuses to start when a
// check fails rather than run commands unconfined. Optional checks say
// how disk limits are enforced, if they are, and what the base
// environment has of its declared packages and what it lacks.
func Doctor(cfg Config) []Check {
	return append(hostChecks(cfg), packageChecks(cfg)...)
}

// hostChecks are the checks that decide whether the daemon may start.
func hostChecks(cfg Config) []Check {
	var checks []Check
	add := func(name, detail string, err error) {
		checks = append(checks, Check{Name: name, Detail: detail, Err: err})
	}

	var err error
	if os.Geteuid() != 0 {
		err = errors.New("not root: namespaces, cgroups and mounts need it")
	}
	add("root", fmt.Sprintf("euid %d", os.Geteuid()), err)

	cg, err := cgroup.New(cfg.CgroupParent)
	if err != nil {
		add("cgroups", "", err)
	} else {
		controllers, err := cg.Controllers()
		add("cgroups", fmt.Sprintf("mode %s, parent %s, controllers %s", cg.Mode(), cg.Parent(), strings.Join(controllers, " ")), err)
	}

	var missing []string
	for _, ns := range []string{"mnt", "pid", "ipc", "uts", "net", "cgroup"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			missing = append(missing, ns)
		}
	}
	err = nil
	if len(missing) > 0 {
		err = fmt.Errorf("the kernel lacks %s namespaces", strings.Join(missing, ", "))
	}
	add("namespaces", "mnt pid ipc uts net cgroup", err)

	add("overlayfs", "", checkOverlay())

	out, err := exec.Command(cfg.Python, "-c", "import venv, ensurepip, sys; print(sys.version.split()[0])").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s cannot make venvs (install python3-venv): %w: %s", cfg.Python, err, strings.TrimSpace(string(out)))
	}
	add("python", cfg.Python+" "+strings.TrimSpace(string(out)), err)
	return append(checks, quotaCheck(cfg))
}

// quotaCheck says which mechanism enforces disk limits on the state
// directory's filesystem (quota.Detect, on the state directory or, before
// the first start, the nearest directory above it), and the mode the
// state directory was laid out with, if any. It is optional: without a
// mechanism the daemon runs and enforces no disk limit.
func quotaCheck(cfg Config) Check {
	dir := cfg.StateDir
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	r := quota.Detect(context.Background(), dir)
	detail := r.String()
	if data, err := os.ReadFile(filepath.Join(mounts.Layout{Root: cfg.StateDir}.Quota(), "mode")); err == nil {
		detail += fmt.Sprintf("; the state directory is laid out in %s mode", strings.TrimSpace(string(data)))
	}
	return Check{Name: "quota", Detail: detail, Err: r.Err(), Optional: true}
}

// packageChecks say what the base environment has of the declared
// packages and what it lacks, what the host's python would give the next
// build, and whether the allow-list reads. None keeps the daemon from
// starting: sessions work without them.
func packageChecks(cfg Config) []Check {
	layout := mounts.Layout{Root: cfg.StateDir}
	var checks []Check
	add := func(name, detail string, err error) {
		checks = append(checks, Check{Name: name, Detail: detail, Err: err, Optional: true})
	}

	list, err := packages.NewAllowFile(layout.AllowedPackages()).Load()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		add("allow-list", layout.AllowedPackages()+" not written yet (the daemon writes the default on start)", nil)
	case err != nil:
		add("allow-list", "", fmt.Errorf("%w: installs are refused until it is fixed", err))
	default:
		add("allow-list", fmt.Sprintf("%s allows %s", layout.AllowedPackages(), strings.Join(list.Names(), ", ")), nil)
	}

	out, err := exec.Command(cfg.Python, envs.ProbeArgs(cfg.Python)[1:]...).Output()
	var host envs.Probe
	if err == nil {
		host, err = envs.ParseProbe(out)
	}
	if err != nil {
		add("host packages", "", fmt.Errorf("%s cannot list its packages: %w", cfg.Python, err))
	} else {
		m, err := envs.NewManifest(hostProbeID, time.Time{}, cfg.BasePackages, host, nil)
		if err != nil {
			add("host packages", "", err)
		} else {
			add("host packages", fmt.Sprintf("%s has %s; the package cache must provide %s",
				cfg.Python, present(m.Present), requirements(m.Missing)), nil)
		}
	}

	newest, err := envs.NewStore(layout.Envs()).Newest()
	switch {
	case errors.Is(err, envs.ErrNoEnv):
		add("base env", "not built yet (the daemon builds it on its first start; sandboxd env build)", nil)
	case err != nil:
		add("base env", "", err)
	case len(newest.Missing) > 0:
		var why []string
		for _, m := range newest.Missing {
			why = append(why, m.Requirement+": "+m.Reason)
		}
		add("base env", fmt.Sprintf("%s has %s", newest.ID, present(newest.Present)),
			fmt.Errorf("%s lacks %s (install the python3-* packages, or add wheels with sandboxd packages add, then sandboxd env build --force)", newest.ID, strings.Join(why, "; ")))
	default:
		add("base env", fmt.Sprintf("%s has %s", newest.ID, present(newest.Present)), nil)
	}
	return checks
}

// hostProbeID names the host's python where a manifest wants a version
// id: it is no version, and is never written.
const hostProbeID = "00000000T000000Z-00000000"

func present(ps []envs.Package) string {
	if len(ps) == 0 {
		return "none of the declared packages"
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Name+" "+p.Version)
	}
	return strings.Join(out, ", ")
}

func requirements(ms []envs.Missing) string {
	if len(ms) == 0 {
		return "nothing"
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Requirement)
	}
	return strings.Join(out, ", ")
}

// Healthy returns the failed required checks joined, or nil.
func Healthy(checks []Check) error {
	var errs []error
	for _, c := range checks {
		if c.Err != nil && !c.Optional {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, c.Err))
		}
	}
	return errors.Join(errs...)
}

// checkOverlay asks the kernel for an overlay file system context, which
// loads the module if it is not loaded yet (the kernel's own module
// autoload, which the unit's ProtectKernelModules= does not stop);
// /proc/filesystems alone would miss a module not loaded yet.
func checkOverlay() error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err == nil {
		return unix.Close(fd)
	}
	if !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("overlayfs is not available: %w", err)
	}
	// Before fsopen (Linux 5.2): the list of registered file systems.
	fs, err := os.ReadFile("/proc/filesystems")
	if err == nil && !strings.Contains(string(fs), "\toverlay\n") {
		err = errors.New("overlayfs is not available (modprobe overlay)")
	}
	return err
}
