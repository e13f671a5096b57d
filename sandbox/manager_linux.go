package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/mounts/quota"
)

// Manager owns every session of the daemon.
type Manager struct {
	cfg    Config
	layout mounts.Layout
	cg     *cgroup.Manager
	log    *slog.Logger
	// envOwner owns the shared environment and runs its builds; every
	// user's commands have it as a supplementary group.
	envOwner    mounts.Owner
	swap        bool
	controllers []string
	// lock keeps a second daemon off the same state tree.
	lock *os.File
	// agents is the directory of the agents' sockets, held open so that
	// their paths stay short (agentSocket).
	agents *os.File
	// processBytes counts the unread output every background process of
	// the daemon holds.
	processBytes atomic.Int64

	// mu guards sessions and each session's phase; it is never held
	// across a slow call.
	mu sync.Mutex
	// sessions holds every session the daemon knows, including ids
	// being created (so that a duplicate is refused while the first is
	// built) and being deleted.
	sessions map[string]*session
	// userUIDs gives each user their own uid (users_linux.go); uidTaken
	// marks the uids given or being given.
	userUIDs map[string]int
	uidTaken map[int]bool

	// quota enforces the users' and sessions' disk limits
	// (quota_linux.go); disks are the users attached to it.
	quota *quota.Manager
	disks map[string]*userDisk
	// chargeWrites: the daemon's own writes into the users' trees must
	// drop CAP_SYS_RESOURCE to be charged to quotas (charged_linux.go).
	chargeWrites bool

	// stopJanitor ends the janitor (lifetime_linux.go), which closes
	// janitorDone when it has.
	stopJanitor context.CancelFunc
	janitorDone chan struct{}
}

// NewManager prepares the state tree and the cgroup parent, then recovers
// what a previous daemon left: running sandboxes are adopted, sessions
// whose sandbox is gone get a new one, half-done creates and deletes are
// finished, and stray cgroups are removed. A session that cannot be
// restored is kept as broken, with the reason; it never stops the daemon.
func NewManager(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	checks := Doctor(cfg)
	if err := Healthy(checks); err != nil {
		return nil, fmt.Errorf("this host cannot sandbox (see sandboxd doctor): %w", err)
	}
	cg, err := cgroup.New(cfg.CgroupParent)
	if err != nil {
		return nil, err
	}
	controllers, err := cg.Controllers()
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:         cfg,
		layout:      mounts.Layout{Root: cfg.StateDir},
		cg:          cg,
		log:         cfg.Logger,
		envOwner:    mounts.Owner{UID: cfg.SandboxUID, GID: cfg.SandboxGID},
		userUIDs:    map[string]int{},
		uidTaken:    map[int]bool{},
		disks:       map[string]*userDisk{},
		swap:        swapAccounting(cg.Mode()),
		controllers: controllers,
		sessions:    map[string]*session{},
	}
	if err := m.layout.Init(); err != nil {
		return nil, err
	}
	if m.lock, err = lockState(m.layout); err != nil {
		return nil, err
	}
	if m.agents, err = os.Open(m.layout.Agents()); err != nil {
		m.Close()
		return nil, fmt.Errorf("agents directory: %w", err)
	}
	if err := m.layout.PrepareRootfs(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.layout.WriteIdentity(m.envOwner, m.envOwner.GID); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.loadUsers(); err != nil {
		m.Close()
		return nil, err
	}
	mode, err := m.quotaMode(ctx)
	if err != nil {
		m.Close()
		return nil, err
	}
	if m.quota, err = quota.New(ctx, quota.Config{Mode: mode, Dir: m.layout.Quota()}); err != nil {
		m.Close()
		return nil, err
	}
	m.chargeWrites = mode == quota.ModeProject
	m.attachUsers(ctx)
	if err := m.recover(ctx); err != nil {
		m.Close()
		return nil, fmt.Errorf("recover sessions: %w", err)
	}
	m.startJanitor()
	return m, nil
}

// lockState takes the state tree's lock, which lives as long as the
// process: recovery would otherwise kill another daemon's commands.
func lockState(l mounts.Layout) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(l.Root, "sandboxd.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("state dir %s is in use by another sandboxd: %w", l.Root, err)
	}
	return f, nil
}

// Close ends the janitor and releases the state tree. Sessions keep
// running, for the next daemon to adopt.
func (m *Manager) Close() {
	if m.stopJanitor != nil {
		m.stopJanitor()
		<-m.janitorDone
	}
	m.mu.Lock()
	for _, s := range m.sessions {
		s.release()
	}
	m.mu.Unlock()
	if m.agents != nil {
		_ = m.agents.Close()
	}
	if m.lock != nil {
		_ = m.lock.Close()
	}
}

// swapAccounting reports whether memory+swap can be limited, so that a
// session's swap can be held at zero. On v2 libcontainer skips a missing
// memory.swap.max by itself; on v1 memsw exists only with swap accounting.
func swapAccounting(mode cgroup.Mode) bool {
	if mode == cgroup.ModeV2 {
		return true
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// Info describes the daemon.
func (m *Manager) Info(context.Context) Info {
	m.mu.Lock()
	n := 0
	for _, s := range m.sessions {
		if s.phase != phaseCreating && s.phase != phaseExpired {
			n++
		}
	}
	m.mu.Unlock()
	return Info{
		Version:       m.cfg.Version,
		CgroupMode:    string(m.cg.Mode()),
		CgroupParent:  m.cg.Parent(),
		Controllers:   m.controllers,
		DefaultLimits: m.cfg.DefaultLimits,
		MaxLimits:     m.cfg.MaxLimits,
		Sessions:      n,
		QuotaMode:     string(m.quota.Mode()),
	}
}

// fault asks the test hook whether step fails.
func (m *Manager) fault(step string) error {
	if m.cfg.Faults == nil {
		return nil
	}
	return m.cfg.Faults.At(step)
}
