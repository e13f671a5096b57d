package sandbox

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// The daemon's own writes into a user's quota-limited trees (uploads,
// edits, kept files, background processes' logs) must be charged to the
// limits like a sandbox's. A full filesystem (loop mode) stops root as it
// stops anyone, but ext4's project quotas let a process with
// CAP_SYS_RESOURCE write past them: in project mode those writes run on
// an OS thread that dropped that one capability. Capabilities are per
// thread, so the rest of the daemon keeps its own; the thread is never
// handed back to the Go scheduler (its goroutine ends locked to it), so
// nothing else ever runs on it.

// charged runs f with its writes charged to quotas: on a thread without
// CAP_SYS_RESOURCE when the mechanism needs it, directly otherwise. f
// must do its I/O itself, on its own goroutine.
func (m *Manager) charged(f func() error) error {
	if !m.chargeWrites {
		return f()
	}
	return withoutResourceCap(f)
}

// withoutResourceCap runs f on a new OS thread without CAP_SYS_RESOURCE
// in its effective set, and ends the thread after.
func withoutResourceCap(f func() error) error {
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		if err := dropResourceCap(); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	return <-done
}

// dropResourceCap clears CAP_SYS_RESOURCE from the calling thread's
// effective set (capset acts on the calling thread only).
func dropResourceCap() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[unix.CAP_SYS_RESOURCE/32].Effective &^= 1 << (unix.CAP_SYS_RESOURCE % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop CAP_SYS_RESOURCE: %w", err)
	}
	return nil
}

// chargedFile is a file written, one write at a time, by a goroutine of
// its own on a thread without CAP_SYS_RESOURCE: a background process's
// log in project mode. Write waits for its write (p is not kept); Close
// ends the goroutine and its thread. It is not safe for concurrent use.
type chargedFile struct {
	writes  chan []byte
	results chan writeResult
	closed  chan error
}

type writeResult struct {
	n   int
	err error
}

// newChargedFile takes f over: only its goroutine writes to f, and
// closes it.
func newChargedFile(f *os.File) io.WriteCloser {
	c := &chargedFile{writes: make(chan []byte), results: make(chan writeResult), closed: make(chan error, 1)}
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		err := dropResourceCap()
		for p := range c.writes {
			if err != nil {
				c.results <- writeResult{0, err}
				continue
			}
			n, werr := f.Write(p)
			c.results <- writeResult{n, werr}
		}
		c.closed <- f.Close()
	}()
	return c
}

func (c *chargedFile) Write(p []byte) (int, error) {
	c.writes <- p
	r := <-c.results
	return r.n, r.err
}

func (c *chargedFile) Close() error {
	close(c.writes)
	return <-c.closed
}
