package sandbox

import (
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/mounts"
)

// A new session's sandbox is mostly libcontainer starting a container,
// which is runc run's own work and as long (measured: ~40 ms on a loaded
// 2-core VM). So the daemon keeps Config.ReadySandboxes sandboxes started
// ahead of need, with every mount that no user or session decides
// (mounts.ReadyMounts), and gives a new session one of them (bind_linux.go):
// its cgroup and limits, its mounts and hostname. A restarted session, or
// a create that finds none ready, starts its own as before.

const (
	// readyUser is the user whose cgroup holds the ready sandboxes'
	// (parent/user_.ready/<id>): no user id has a '.', so no session's
	// cgroup is ever there, and a daemon's start removes what it finds
	// there as belonging to no session.
	readyUser = ".ready"
	// readyPrefix starts the container id of a ready sandbox; no session
	// id has a '.', so none is ever one.
	readyPrefix = "ready."
	// readyRetry is how long the pool waits after it failed to start a
	// sandbox before it tries again.
	readyRetry = 10 * time.Second
	// readyNice is the nice value sandboxes are started ahead of need
	// at: a refill must not slow down the first commands of the session
	// that took the last one. PID 1 gets 0 back when it is bound.
	readyNice = 10
)

// readyBox is a sandbox started ahead of need.
type readyBox struct {
	id string
	c  *libcontainer.Container
}

// readyPool keeps sandboxes started ahead of need. Its filler is the one
// goroutine that starts them; take hands them out.
type readyPool struct {
	mu    sync.Mutex
	boxes []*readyBox
	// wake is signalled when a box was taken; stop ends the filler, which
	// closes done.
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// startReady starts the filler when ready sandboxes are configured and
// the kernel has the mount API the binder needs (Linux 5.12).
func (m *Manager) startReady() {
	if m.cfg.ReadySandboxes <= 0 {
		return
	}
	if err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{}); errors.Is(err, unix.ENOSYS) {
		m.log.Warn("no ready sandboxes: this kernel has no mount_setattr(2); each session starts its own")
		return
	}
	// On v2 a sandbox's cgroup namespace is rooted at the cgroup it
	// started in; a ready one, moved into its session's cgroup, could not
	// start its commands in cgroups beneath it (clone3 into a cgroup
	// outside the namespace fails). Ready sandboxes need the session's
	// cgroup to be the one they started in (a rename, which v2 allows only
	// within one parent): until then, each session starts its own there.
	if m.cg.Mode() == cgroup.ModeV2 {
		m.log.Info("no ready sandboxes on cgroup v2: each session starts its own")
		return
	}
	p := &m.ready
	p.wake, p.stop, p.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go m.fillReady()
}

// fillReady keeps Config.ReadySandboxes sandboxes ready until stopped.
// It runs on a thread of its own at readyNice (a thread's nice value is its
// own on Linux, and what it forks inherits it): the thread ends with it.
func (m *Manager) fillReady() {
	p := &m.ready
	defer close(p.done)
	runtime.LockOSThread()
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, readyNice); err != nil {
		m.log.Warn("ready sandboxes start at the daemon's priority", "err", err)
	}
	for {
		for p.count() < m.cfg.ReadySandboxes {
			b, err := m.newReadyBox()
			if err != nil {
				m.log.Warn("start a ready sandbox", "err", err)
				select {
				case <-p.stop:
					return
				case <-time.After(readyRetry):
				}
				continue
			}
			if !p.put(b) {
				m.discardReady(b)
				return
			}
		}
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
	}
}

// newReadyBox starts a sandbox with the mounts every sandbox has, the
// default limits and no session.
func (m *Manager) newReadyBox() (*readyBox, error) {
	id := readyPrefix + newID(8)
	c, err := m.startContainer(boxSpec{
		id:         id,
		hostname:   "ready",
		rootfs:     m.layout.Rootfs(),
		cgroupPath: m.cg.SessionPath(readyUser, id),
		limits:     m.cfg.DefaultLimits,
		swap:       m.swap,
		mounts:     mounts.ReadyMounts(m.cache.PresentedDir()),
	})
	if err != nil {
		return nil, err
	}
	return &readyBox{id: id, c: c}, nil
}

func (p *readyPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.boxes)
}

// put adds b, unless the pool is stopping (false).
func (p *readyPool) put(b *readyBox) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		return false
	default:
	}
	p.boxes = append(p.boxes, b)
	return true
}

// take hands out a ready sandbox, or nil, and has the filler start
// another.
func (p *readyPool) take() *readyBox {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.boxes) == 0 {
		return nil
	}
	b := p.boxes[0]
	p.boxes = p.boxes[1:]
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return b
}

// closeReady stops the filler and destroys the sandboxes still ready.
func (m *Manager) closeReady() {
	p := &m.ready
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	boxes := p.boxes
	p.boxes = nil
	p.mu.Unlock()
	for _, b := range boxes {
		m.discardReady(b)
	}
	m.removeUserCgroup(readyUser)
}

// discardReady destroys a ready sandbox that will serve no session, its
// cgroup with it.
func (m *Manager) discardReady(b *readyBox) {
	err := m.destroyContainer(b.c)
	err = errors.Join(err, m.removeContainer(b.id), m.cg.Remove(m.cg.SessionPath(readyUser, b.id)))
	if err != nil {
		m.log.Warn("destroy a ready sandbox", "container", b.id, "err", err)
	}
}
