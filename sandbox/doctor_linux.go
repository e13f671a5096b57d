package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/cgroup"
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
// check fails rather than run commands unconfined.
func Doctor(cfg Config) []Check {
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
	return checks
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
