package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

const (
	// readyTimeout covers the first start, which builds the base venv.
	readyTimeout = 3 * time.Minute
	stopTimeout  = 30 * time.Second
)

// daemon is the sandboxd under test: the real binary as its own process,
// on a state directory and a cgroup parent of the bench's own.
type daemon struct {
	cmd    *exec.Cmd
	socket string
	parent string
	client *client.Client
	done   chan struct{}
}

// benchConfig lets one user hold every session a figure needs (the 100
// idle ones at once), each with a 20 MB disk of its own: enough for the
// default file limit's inodes, and a budget that a loop-mode user image
// (fallocated) keeps at 4 GB.
const benchConfig = `# written by packaging/bench
quota:
  max_sessions: 1000
  max_workspace_size_mb: 4096
  session_disk_mb: 20
`

// startDaemon starts bin (with quota.mode quotaMode, unless empty),
// logging to dir/sandboxd.log, and waits until it answers.
func startDaemon(ctx context.Context, bin, dir, parent, quotaMode string) (*daemon, error) {
	config := filepath.Join(dir, "sandboxd.yaml")
	cfg := benchConfig
	if quotaMode != "" {
		cfg += "  mode: " + quotaMode + "\n"
	}
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "sandboxd.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close() // the daemon has its own descriptor
	d := &daemon{socket: filepath.Join(dir, "sandboxd.sock"), parent: parent, done: make(chan struct{})}
	d.cmd = exec.Command(bin, "--config", config, "--state-dir", filepath.Join(dir, "state"),
		"--socket", d.socket, "--cgroup-parent", parent)
	// A file, not a pipe: Wait must not wait for the sandboxes, which
	// inherit nothing but might.
	d.cmd.Stdout, d.cmd.Stderr = log, log
	// A bench that dies takes its daemon along; the next run's daemon
	// adopts the sessions it left, and the bench deletes them.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sandboxd: %w", err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	d.client = client.New(d.socket)
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		if _, err := d.client.Info(ctx); err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("sandboxd exited while starting (see %s)", log.Name())
		case <-ctx.Done():
			d.stop()
			return nil, fmt.Errorf("sandboxd did not answer within %s (see %s)", readyTimeout, log.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop ends the daemon gracefully (its sessions keep running, as in
// production: delete them first).
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// deleteAll deletes every session the daemon has.
func (d *daemon) deleteAll(ctx context.Context) error {
	list, err := d.client.ListSessions(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range list {
		if _, err := d.client.DeleteSession(ctx, s.ID, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// session creates a session of the bench user with cpus CPUs.
func (d *daemon) session(ctx context.Context, cpus float64) (api.Session, error) {
	return d.client.CreateSession(ctx, api.CreateSessionRequest{UserID: benchUser, Limits: &api.Limits{CPUs: cpus}})
}

// execTrue runs `true` in session id through the API.
func (d *daemon) execTrue(ctx context.Context, id string) error {
	res, err := d.client.Exec(ctx, id, api.ExecRequest{Argv: []string{"true"}})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("exec true in %s: exit %d", id, res.ExitCode)
	}
	return nil
}
