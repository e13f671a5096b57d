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
	"github.com/sandboxd/sandboxd/sandbox/events"
	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"
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
	// events is where the sessions' events are published (events_linux.go).
	events *events.Bus
	// ready holds the sandboxes started ahead of need (ready_linux.go).
	ready readyPool
	// cleanup runs what a delete leaves for later: letting go of a dead
	// sandbox's mount namespace, removing a session's directory from the
	// trash. Close waits for it.
	cleanup sync.WaitGroup

	// allow is the allow-list, cache the wheel cache, envs the versions
	// of the base environment.
	allow *packages.AllowFile
	cache *packages.Cache
	envs  envs.Store
	// envBuild serialises building, committing and collecting versions
	// of the base environment; it is held for a whole build, and never
	// taken while mu is held.
	envBuild sync.Mutex
	// stopWatch ends the allow-list's watcher.
	stopWatch chan struct{}
	watching  sync.WaitGroup

	// mu guards sessions, each session's phase and current; it is never
	// held across a slow call.
	mu sync.Mutex
	// sessions holds every session the daemon knows, including ids
	// being created (so that a duplicate is refused while the first is
	// built) and being deleted.
	sessions map[string]*session
	// userUIDs gives each user their own uid (users_linux.go); uidTaken
	// marks the uids given or being given.
	userUIDs map[string]int
	uidTaken map[int]bool
	// current is the manifest of the base environment new sessions get;
	// its ID is empty before one is built.
	current envs.Manifest

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
	if cfg.Events == nil {
		cfg.Events = events.NewBus()
	}
	if err := Healthy(hostChecks(cfg)); err != nil {
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
		envs:        envs.NewStore(mounts.Layout{Root: cfg.StateDir}.Envs()),
		sessions:    map[string]*session{},
		events:      cfg.Events,
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
	if err := m.layout.MountSystem(cfg.Helper); err != nil {
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
	if err := m.openPackages(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.recover(ctx); err != nil {
		m.Close()
		return nil, fmt.Errorf("recover sessions: %w", err)
	}
	// Recovery knows which versions sessions run on.
	m.collectEnvs()
	m.stopWatch = make(chan struct{})
	m.watching.Add(1)
	go func() {
		defer m.watching.Done()
		m.watchAllowList(m.stopWatch)
	}()
	m.emptyTrashes()
	m.startReady()
	m.startJanitor()
	return m, nil
}

// openPackages opens the allow-list (writing the default one if there is
// none), the package cache, whose allowed wheels it presents, and the
// versions of the base environment, removing what builds that died left.
func (m *Manager) openPackages() error {
	cache, allow, err := openCache(m.layout)
	if err != nil {
		return err
	}
	m.cache, m.allow = cache, allow
	// A bad allow-list must not stop the sessions: installs are refused,
	// naming its bad line, until it is fixed.
	if p, err := m.cache.Present(); err != nil {
		m.log.Error("package cache not presented: installs are refused until this is fixed", "err", err)
	} else if len(p.Tampered) > 0 {
		m.log.Error("cached wheels fail their hash check and are withheld", "wheels", p.Tampered)
	}
	if err := m.envs.RemoveStale(); err != nil {
		m.log.Warn("remove unfinished base env builds", "err", err)
	}
	m.loadEnvs()
	return nil
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

// Close ends the janitor, destroys the ready sandboxes, ends the event
// subscriptions and releases the state tree once what deletes left for
// later is done. Sessions keep running, for the next daemon to adopt.
func (m *Manager) Close() {
	if m.stopJanitor != nil {
		m.stopJanitor()
		<-m.janitorDone
	}
	m.closeReady()
	m.cleanup.Wait()
	m.events.Close()
	if m.stopWatch != nil {
		close(m.stopWatch)
		m.watching.Wait()
		m.stopWatch = nil
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
		// Only the daemon that holds the lock made it.
		if err := m.layout.UnmountSystem(); err != nil {
			m.log.Warn("unmount the system file system", "err", err)
		}
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
	env := m.currentEnv()
	m.mu.Unlock()
	return Info{
		Version:       m.cfg.Version,
		CgroupMode:    string(m.cg.Mode()),
		CgroupParent:  m.cg.Parent(),
		Controllers:   m.controllers,
		DefaultLimits: m.cfg.DefaultLimits,
		MaxLimits:     m.cfg.MaxLimits,
		Sessions:      n,
		Env:           env,
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
