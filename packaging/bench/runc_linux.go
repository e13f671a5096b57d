package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/mounts"
)

// sandboxUID is who the peer's commands run as: a user of sandboxd's range,
// as a session's commands do.
const sandboxUID = 100000

// runc drives the peer: runc containers made like a session's sandbox —
// the same skeleton root (mounts.PrepareRootfs: the host's /usr and /etc
// bound read-only, /bin and /lib* as the host has them), the same kernel
// file systems, masked and read-only paths, a tmpfs /tmp, new mount, pid,
// ipc, uts, net (loopback) and cgroup namespaces, the session's CPU,
// memory (no swap) and pids limits, and commands as an unprivileged uid
// without capabilities under no_new_privs. It has neither the session's
// workspace binds and venv overlay nor a seccomp filter (see
// build-runc.sh): the peer is spared those.
type runc struct {
	bin string
	// root is runc's state directory (--root), bundles holds one
	// bundle per container name, and rootfs is the skeleton all share.
	root, bundles, rootfs string
	// cg knows parent, the cgroup every container lives under.
	cg     *cgroup.Manager
	parent string
	// swap says whether memory+swap can be limited (v1 memsw).
	swap bool
	// log receives runc's own error messages.
	log *os.File
}

func newRunc(bin, dir, parent string) (*runc, error) {
	r := &runc{bin: bin, root: filepath.Join(dir, "runc"), bundles: filepath.Join(dir, "bundles"), parent: parent}
	for _, d := range []string{r.root, r.bundles} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	skeleton := mounts.Layout{Root: dir}
	if err := skeleton.PrepareRootfs(); err != nil {
		return nil, err
	}
	r.rootfs = skeleton.Rootfs()
	var err error
	if r.cg, err = cgroup.New(parent); err != nil {
		return nil, err
	}
	if r.cg.Mode() == cgroup.ModeV2 {
		r.swap = true
	} else {
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		r.swap = err == nil
	}
	if r.log, err = os.OpenFile(filepath.Join(dir, "runc.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	return r, r.cleanup()
}

// bundle writes the bundle of the containers called name: cpus CPUs, and
// args as their process (the init, or the one command of `runc run`).
func (r *runc) bundle(name string, cpus float64, args ...string) (string, error) {
	dir := filepath.Join(r.bundles, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	const period = 100_000
	quota := int64(cpus * period)
	mem := int64(512 << 20)
	pids := int64(50)
	mres := &specs.LinuxMemory{Limit: &mem}
	if r.swap {
		mres.Swap = &mem
	}
	noExecDev := []string{"nosuid", "noexec", "nodev"}
	spec := specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: r.rootfs, Readonly: true},
		Hostname: name,
		Process: &specs.Process{
			User:            specs.User{UID: sandboxUID, GID: sandboxUID},
			Args:            args,
			Env:             []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp"},
			Cwd:             "/",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 1024},
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
			},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: noExecDev},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: append(noExecDev, "mode=1777", "size=65536k")},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: noExecDev},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: append(noExecDev, "ro")},
			{Destination: "/usr", Type: "bind", Source: "/usr", Options: []string{"rbind", "ro", "nosuid", "nodev"}},
			{Destination: "/etc", Type: "bind", Source: "/etc", Options: []string{"rbind", "ro", "nosuid", "nodev"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=104857600"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: r.parent + "/" + name,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: ptr(uint64(period))},
				Memory:  mres,
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			MaskedPaths:   mounts.MaskedPaths,
			ReadonlyPaths: mounts.ReadonlyPaths,
		},
	}
	for _, link := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if fi, err := os.Lstat(link); err == nil && fi.IsDir() {
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: link, Type: "bind", Source: link, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
		}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600)
}

func ptr[T any](v T) *T { return &v }

// run runs runc with args, its output to the log, and waits for it.
func (r *runc) run(args ...string) error {
	cmd := exec.Command(r.bin, append([]string{"--root", r.root}, args...)...)
	// Files, not pipes: a detached container inherits them, and Wait
	// must not wait for it.
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runc %s: %w (see %s)", strings.Join(args, " "), err, r.log.Name())
	}
	return nil
}

// start creates and starts container id from bundle, detached.
func (r *runc) start(id, bundle string) error {
	return r.run("run", "--detach", "--bundle", bundle, id)
}

// execTrue is `runc exec ID true`, a whole runc process.
func (r *runc) execTrue(id string) error { return r.run("exec", id, "true") }

// runOnce is `runc run` of the bundle's command: create, start, wait for
// it, delete.
func (r *runc) runOnce(id, bundle string) error { return r.run("run", "--bundle", bundle, id) }

// remove is `runc delete --force`: kill the container, remove its state
// and cgroup.
func (r *runc) remove(id string) error { return r.run("delete", "--force", id) }

// cleanup removes every container in the bench's runc state (a killed run
// leaves some) and the cgroup parent.
func (r *runc) cleanup() error {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, r.remove(e.Name()))
		}
	}
	for _, dir := range r.cg.Dirs(r.parent) {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

func (r *runc) close() error {
	err := r.cleanup()
	return errors.Join(err, r.log.Close())
}
