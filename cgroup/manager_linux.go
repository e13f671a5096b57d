package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"
)

const (
	// unifiedMountpoint is where the v2 hierarchy is on a unified host;
	// hybridMountpoint is where it is beside the v1 ones.
	unifiedMountpoint = "/sys/fs/cgroup"
	hybridMountpoint  = "/sys/fs/cgroup/unified"
	// emptyWait bounds how long killed processes may take to leave a cgroup.
	emptyWait = 5 * time.Second
)

// Mode names the host's cgroup layout.
type Mode string

const (
	ModeV1     Mode = "v1"
	ModeHybrid Mode = "hybrid"
	ModeV2     Mode = "v2"
)

// ErrUnavailable means the host has no usable cgroup hierarchy.
var ErrUnavailable = errors.New("cgroups unavailable")

// ErrBusy means a user's cgroup still has a child in some hierarchy. Right
// after its last session's cgroup is removed the kernel may still say so
// for a moment: the child goes offline after an RCU grace period, not at
// its rmdir.
var ErrBusy = errors.New("cgroup busy")

// Manager knows the daemon's parent cgroup and the host's hierarchies,
// resolved once by New. It holds no other state and is safe for
// concurrent use.
type Manager struct {
	mode   Mode
	parent string
	// unified is the v2 hierarchy's mountpoint ("" on a v1 host). In
	// hybrid mode it carries no controller, and only libcontainer's
	// sessions are placed in it; execs are not, as they need nothing
	// there and a move into it is the dearest of all.
	unified string
	// v1 holds the v1 hierarchies by purpose; nil on v2.
	v1 *hierarchies
}

// hierarchies are the v1 hierarchies the daemon uses, each list for one
// purpose, so that no call touches a hierarchy it does not need.
type hierarchies struct {
	// all is every mounted hierarchy: libcontainer puts a session in each,
	// and Remove removes it from each.
	all []cgroup1.Subsystem
	// exec holds what an exec cgroup needs: memory for its peak and OOM
	// kills, the freezer to kill its tree. Not cpuacct: the command's
	// supervisor reports its tree's CPU time, and each hierarchy costs
	// every command a mkdir, a move and an rmdir.
	exec []cgroup1.Subsystem
	// stats holds what a session's statistics come from.
	stats []cgroup1.Subsystem
	// freezer freezes sessions.
	freezer []cgroup1.Subsystem
}

// New returns a Manager for the absolute cgroup path parent (such as
// "/sandboxd"). A relative path would nest under the daemon's own cgroup,
// which belongs to whoever started it, so it is refused.
func New(parent string) (*Manager, error) {
	if err := checkParent(parent); err != nil {
		return nil, err
	}
	switch cgroups.Mode() {
	case cgroups.Unified:
		return newManager(parent, ModeV2, unifiedMountpoint)
	case cgroups.Hybrid:
		return newManager(parent, ModeHybrid, hybridMountpoint)
	case cgroups.Legacy:
		return newManager(parent, ModeV1, "")
	default:
		return nil, ErrUnavailable
	}
}

// newManager resolves the hierarchies of mode once. Tests use it to drive
// the v2 code on a hybrid host's unified hierarchy.
func newManager(parent string, mode Mode, unified string) (*Manager, error) {
	m := &Manager{mode: mode, parent: parent, unified: unified}
	if mode == ModeV2 {
		return m, nil
	}
	all, err := cgroup1.Default()
	if err != nil {
		return nil, fmt.Errorf("list cgroup v1 hierarchies: %w", err)
	}
	if len(all) == 0 {
		return nil, ErrUnavailable
	}
	pick := func(names ...cgroup1.Name) []cgroup1.Subsystem {
		var out []cgroup1.Subsystem
		for _, s := range all {
			if slices.Contains(names, s.Name()) {
				out = append(out, s)
			}
		}
		return out
	}
	h := &hierarchies{
		all:     all,
		stats:   pick(cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Pids),
		freezer: pick(cgroup1.Freezer),
		exec:    pick(cgroup1.Freezer),
	}
	// The memory hierarchy is read for usage, peak and OOM kills only:
	// the kmem and memsw files, which newer kernels drop, are skipped.
	if mem := pick(cgroup1.Memory); len(mem) == 1 {
		lean := cgroup1.NewMemory(filepath.Dir(subsystemDir(mem[0], "/")), cgroup1.IgnoreModules("kmem", "kmem.tcp", "memsw"))
		h.stats = append(h.stats, lean)
		h.exec = append(h.exec, lean)
	}
	if len(h.exec) != 2 || len(h.freezer) != 1 || len(pick(cgroup1.Pids)) != 1 || len(pick(cgroup1.Cpuacct)) != 1 {
		return nil, fmt.Errorf("%w: need the cpuacct, memory, pids and freezer v1 hierarchies", ErrUnavailable)
	}
	m.v1 = h
	return m, nil
}

// subsystemDir is the directory of cgPath in s's hierarchy.
func subsystemDir(s cgroup1.Subsystem, cgPath string) string {
	// Every hierarchy cgroup1.Default returns has a directory.
	return s.(interface{ Path(string) string }).Path(cgPath)
}

// only makes a fixed list of hierarchies cgroup1's to load from.
func only(subsystems []cgroup1.Subsystem) cgroup1.InitOpts {
	return cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) { return subsystems, nil })
}

// load opens cgPath in the v1 hierarchies given; ok is false where it
// exists in none of them.
func load(cgPath string, subsystems []cgroup1.Subsystem) (cg cgroup1.Cgroup, ok bool, err error) {
	cg, err = cgroup1.Load(cgroup1.StaticPath(cgPath), only(subsystems))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("load cgroup %s: %w", cgPath, err)
	}
	return cg, true, nil
}

// unifiedGroup opens cgPath on the v2 hierarchy.
func (m *Manager) unifiedGroup(cgPath string) (*cgroup2.Manager, error) {
	cg, err := cgroup2.Load(cgPath, cgroup2.WithMountpoint(m.unified))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", cgPath, err)
	}
	return cg, nil
}

// Mode is the host's cgroup mode.
func (m *Manager) Mode() Mode { return m.mode }

// Parent is the absolute cgroup path every session lives under.
func (m *Manager) Parent() string { return m.parent }

// UserPath is the cgroup grouping one user's sessions.
func (m *Manager) UserPath(userID string) string {
	return path.Join(m.parent, "user_"+userID)
}

// SessionPath is the cgroup of one session.
func (m *Manager) SessionPath(userID, sessionID string) string {
	return path.Join(m.UserPath(userID), sessionID)
}

// sessionControllers are what sessions are limited by, and what a v2
// session hands down to its execs.
func sessionControllers() []string { return []string{"cpu", "memory", "pids"} }

// Controllers lists the resource controllers sessions are limited by; it
// fails if one is missing.
func (m *Manager) Controllers() ([]string, error) {
	var have []string
	if m.mode == ModeV2 {
		root, err := m.unifiedGroup("/")
		if err != nil {
			return nil, err
		}
		if have, err = root.RootControllers(); err != nil {
			return nil, fmt.Errorf("read controllers: %w", err)
		}
	} else {
		for _, s := range m.v1.all {
			have = append(have, string(s.Name()))
		}
	}
	var out []string
	want := sessionControllers()
	for _, c := range want {
		if slices.Contains(have, c) {
			out = append(out, c)
		}
	}
	if len(out) != len(want) {
		return out, fmt.Errorf("cgroup controllers %v available, need %v", out, want)
	}
	return out, nil
}

// Dirs lists the directories of cgPath in every hierarchy.
func (m *Manager) Dirs(cgPath string) []string {
	var dirs []string
	if m.v1 != nil {
		for _, s := range m.v1.all {
			dirs = append(dirs, subsystemDir(s, cgPath))
		}
	}
	if m.unified != "" {
		dirs = append(dirs, filepath.Join(m.unified, cgPath))
	}
	return dirs
}

// Leftovers lists the session cgroups (as absolute cgroup paths) found
// under the parent in any hierarchy.
func (m *Manager) Leftovers() ([]string, error) {
	var found []string
	err := m.eachUserDir(func(dir, user string) error {
		sessions, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, s := range sessions {
			p := path.Join(m.UserPath(user), s.Name())
			if s.IsDir() && !slices.Contains(found, p) {
				found = append(found, p)
			}
		}
		return nil
	})
	return found, err
}

// Users lists the users that have a cgroup under the parent in any
// hierarchy, with or without sessions in it.
func (m *Manager) Users() ([]string, error) {
	var found []string
	err := m.eachUserDir(func(_, user string) error {
		if !slices.Contains(found, user) {
			found = append(found, user)
		}
		return nil
	})
	return found, err
}

// eachUserDir calls fn with the directory and the id of each user cgroup
// under the parent, hierarchy by hierarchy.
func (m *Manager) eachUserDir(fn func(dir, user string) error) error {
	for _, dir := range m.Dirs(m.parent) {
		users, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, u := range users {
			user, ok := strings.CutPrefix(u.Name(), "user_")
			if !u.IsDir() || !ok || user == "" {
				continue
			}
			if err := fn(filepath.Join(dir, u.Name()), user); err != nil {
				return err
			}
		}
	}
	return nil
}

// Pids lists the processes in the cgroup at cgPath and below it, in any
// hierarchy.
//
// A child cgroup (an exec's) removed while the tree is walked fails the
// walk; the listing is then taken again, a few times at most.
func (m *Manager) Pids(cgPath string) ([]int, error) {
	for attempt := 1; ; attempt++ {
		pids, err := m.pids(cgPath)
		if err == nil || attempt == 5 || !(errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV)) {
			return pids, err
		}
	}
}

func (m *Manager) pids(cgPath string) ([]int, error) {
	g, err := m.open(cgPath, false)
	if err != nil {
		return nil, err
	}
	if g.v1 == nil && g.v2 == nil {
		return nil, fmt.Errorf("cgroup %s: %w", cgPath, os.ErrNotExist)
	}
	var pids []int
	add := func(pid int) {
		if !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	if g.v2 != nil {
		procs, err := g.v2.Procs(true)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", cgPath, err)
		}
		for _, p := range procs {
			add(int(p))
		}
	}
	if g.v1 != nil {
		for _, s := range g.v1.Subsystems() {
			procs, err := g.v1.Processes(s.Name(), true)
			if err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", cgPath, err)
			}
			for _, p := range procs {
				add(p.Pid)
			}
		}
	}
	return pids, nil
}

// Remove kills every process left in the session at cgPath, frozen or
// not, waits for them to leave and removes the session's cgroup with
// everything beneath it from every hierarchy. A session that is already
// gone is not an error.
func (m *Manager) Remove(cgPath string) error {
	if err := checkSession(m.parent, cgPath); err != nil {
		return err
	}
	return m.remove(cgPath, true)
}

// remove opens cgPath in every hierarchy it is in and removes it. thaw
// says that no ancestor of cgPath is frozen, so that a frozen cgPath can
// be thawed for its killed processes to die.
func (m *Manager) remove(cgPath string, thaw bool) error {
	// Mostly the group is empty or already gone (libcontainer removed a
	// session's): one rmdir per hierarchy, without opening it.
	fast := group{path: cgPath}
	if m.v1 != nil {
		fast.subsystems = m.v1.all
	}
	if m.unified != "" {
		fast.v2dir = filepath.Join(m.unified, cgPath)
	}
	if fast.rmdir() {
		return nil
	}
	g, err := m.open(cgPath, thaw)
	if err != nil || g.v1 == nil && g.v2 == nil {
		return err
	}
	return g.remove()
}

// open opens cgPath in every hierarchy it is in.
func (m *Manager) open(cgPath string, thaw bool) (group, error) {
	g := group{path: cgPath, thaw: thaw}
	if m.v1 != nil {
		g.subsystems = m.v1.all
		if err := g.reopen(); err != nil {
			return group{}, err
		}
	}
	if m.unified != "" {
		g.v2dir = filepath.Join(m.unified, cgPath)
		if exists(g.v2dir) {
			var err error
			if g.v2, err = m.unifiedGroup(cgPath); err != nil {
				return group{}, err
			}
		}
	}
	return g, nil
}

// group is one cgroup in the hierarchies the daemon uses it in.
type group struct {
	path string
	// v1 is the group in those of the v1 subsystems it is in; nil on v2.
	v1         cgroup1.Cgroup
	subsystems []cgroup1.Subsystem
	// v2 is the group on the unified hierarchy, at v2dir; nil on v1.
	v2    *cgroup2.Manager
	v2dir string
	// thaw says that no ancestor of the group is frozen: a v1 freezer
	// that is frozen is the group's own and can be thawed.
	thaw bool
}

// remove deletes the group. An empty one, the usual case, goes with one
// rmdir per hierarchy, which the kernel refuses while a process is in it:
// containerd's Delete would first stat every file of the group in each
// hierarchy, looking for processes, and double what an exec costs.
// Otherwise remove kills what is left in the group, waits for it to leave
// and deletes the group (and its children) with containerd.
func (g group) remove() error {
	if g.rmdir() {
		return nil
	}
	// The group may be gone from some hierarchies now, after which
	// cgroup1 would take all of it for gone.
	if err := g.reopen(); err != nil {
		return err
	}
	if err := g.kill(); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", g.path, err)
	}
	if g.frozen() && !g.thaw {
		return fmt.Errorf("cgroup %s: an ancestor is frozen, so its killed processes cannot exit until it is thawed", g.path)
	}
	if err := g.waitEmpty(); err != nil {
		return fmt.Errorf("cgroup %s: %w", g.path, err)
	}
	if err := g.delete(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", g.path, err)
	}
	return nil
}

// rmdir removes the group's directory from each hierarchy; false if it is
// left in one (a process or a child cgroup is in it).
func (g group) rmdir() bool {
	removed := true
	for _, s := range g.subsystems {
		err := unix.Rmdir(subsystemDir(s, g.path))
		removed = removed && (err == nil || errors.Is(err, unix.ENOENT))
	}
	if g.v2dir != "" {
		err := unix.Rmdir(g.v2dir)
		removed = removed && (err == nil || errors.Is(err, unix.ENOENT))
	}
	return removed
}

// frozen reports whether the group is frozen in the v1 freezer.
func (g group) frozen() bool {
	return g.v1 != nil && g.hasFreezer() && g.v1.State() == cgroup1.Frozen
}

func (g group) hasFreezer() bool {
	return slices.ContainsFunc(g.v1.Subsystems(), func(s cgroup1.Subsystem) bool { return s.Name() == cgroup1.Freezer })
}

// reopen (re)loads the group in those of its v1 subsystems where it is.
func (g *group) reopen() error {
	if len(g.subsystems) == 0 {
		return nil
	}
	cg, ok, err := load(g.path, g.subsystems)
	if err != nil {
		return err
	}
	g.v1 = nil
	if ok {
		g.v1 = cg
	}
	return nil
}

// delete removes the group and its children from each hierarchy; it fails
// while a process is in one (containerd checks that first).
func (g group) delete() error {
	var errs []error
	if g.v1 != nil {
		errs = append(errs, g.v1.Delete())
	}
	if g.v2 != nil && exists(g.v2dir) {
		errs = append(errs, g.v2.Delete())
	}
	return errors.Join(errs...)
}

// kill sends SIGKILL to every process in the group's tree: through
// cgroup.kill where it is on a unified hierarchy (containerd freezes and
// kills on kernels before 5.14), else by freezing it in the v1 freezer,
// killing what is in it and thawing it. A v1-frozen process dies only once
// thawed: the group is thawed where g.thaw allows.
func (g group) kill() error {
	freezer := g.v1 != nil && g.hasFreezer()
	var err error
	switch {
	case g.v2 != nil && exists(g.v2dir):
		err = g.v2.Kill()
	case g.v1 == nil:
		return nil
	case !freezer:
		err = g.signalAll()
	case g.v1.State() == cgroup1.Frozen:
		// Frozen already, by itself or by an ancestor, whose freeze a
		// thaw here could not undo (cgroup1 would wait for it for ever).
		err = g.signalAll()
	default:
		if err := g.v1.Freeze(); err != nil {
			return err
		}
		err = errors.Join(g.signalAll(), g.v1.Thaw())
	}
	if err == nil && g.thaw && g.frozen() {
		err = g.v1.Thaw()
	}
	return err
}

func exists(dir string) bool {
	_, err := os.Lstat(dir)
	return err == nil
}

// signalAll sends SIGKILL to every process in the group's v1 tree.
func (g group) signalAll() error {
	var errs []error
	for _, s := range g.v1.Subsystems() {
		procs, err := g.v1.Processes(s.Name(), true)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, p := range procs {
			if err := unix.Kill(p.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("kill %d: %w", p.Pid, err))
			}
		}
	}
	return errors.Join(errs...)
}

// populated reports whether any process is left in the group's tree, in
// any of its hierarchies.
func (g group) populated() (bool, error) {
	if g.v2 != nil {
		procs, err := g.v2.Procs(true)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		if len(procs) > 0 {
			return true, nil
		}
	}
	if g.v1 == nil {
		return false, nil
	}
	for _, s := range g.v1.Subsystems() {
		procs, err := g.v1.Processes(s.Name(), true)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		if len(procs) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// waitEmpty polls, with a growing pause and up to emptyWait, until killed
// processes have left the group: exiting takes the kernel a moment, and
// not every mode has an event to wait on.
func (g group) waitEmpty() error {
	deadline := time.Now().Add(emptyWait)
	pause := 100 * time.Microsecond
	for {
		busy, err := g.populated()
		if err != nil || !busy {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still there %s after SIGKILL", emptyWait)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// RemoveUser removes the user's parent cgroup from every hierarchy. Where
// a session is left in it, or the last one has only just been removed, it
// returns ErrBusy and removes it from no hierarchy it is busy in.
//
// It is a plain rmdir rather than containerd's Delete, which removes a
// tree: a session libcontainer has just created, and not yet put its
// process in, would go with it.
func (m *Manager) RemoveUser(userID string) error {
	if userID == "" || strings.ContainsAny(userID, "/\x00") || path.Base(m.UserPath(userID)) != "user_"+userID {
		return fmt.Errorf("user cgroup %q: not a user id", userID)
	}
	var errs []error
	busy := false
	for _, dir := range m.Dirs(m.UserPath(userID)) {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTEMPTY):
			busy = true
		default:
			errs = append(errs, fmt.Errorf("remove user cgroup %s: %w", userID, err))
		}
	}
	if busy {
		errs = append(errs, fmt.Errorf("remove user cgroup %s: %w", userID, ErrBusy))
	}
	return errors.Join(errs...)
}

// RemoveParent removes the whole parent tree from every hierarchy, killing
// what is left in it. It is for tearing a daemon's tree down for good (a
// test's, or a purge), never for a daemon that still serves.
func (m *Manager) RemoveParent() error {
	leftovers, err := m.Leftovers()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range leftovers {
		errs = append(errs, m.Remove(p))
	}
	errs = append(errs, m.remove(m.parent, true))
	return errors.Join(errs...)
}
