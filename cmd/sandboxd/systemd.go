package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/cmd/sandboxd/internal/config"
)

// listen takes the socket systemd passed (socket activation), or makes its
// own; a live socket at the path is never taken over, a stale one is.
func listen(cfg config.Config, log *slog.Logger) (net.Listener, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	switch len(lns) {
	case 0:
		mode, _ := cfg.SocketFileMode()
		return server.Listen(cfg.Socket, mode, cfg.SocketGroup)
	case 1:
		if _, ok := lns[0].(*net.UnixListener); !ok {
			return nil, fmt.Errorf("socket activation passed a %s socket, want a Unix socket", lns[0].Addr().Network())
		}
		log.Info("using the socket systemd passed", "socket", lns[0].Addr().String())
		return lns[0], nil
	default:
		return nil, fmt.Errorf("socket activation passed %d sockets, want one", len(lns))
	}
}

// notify tells systemd (Type=notify) about the daemon's state; outside
// systemd it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("sd_notify", "state", state, "err", err)
	}
}

// watchdog pings systemd at half its WatchdogSec for as long as alive
// answers, so that a daemon that stops serving is restarted.
func watchdog(ctx context.Context, log *slog.Logger, alive func() bool) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				notify(log, sd.SdNotifyWatchdog)
			}
		}
	}
}

// startupGrace keeps systemd's start timeout (TimeoutStartSec) from
// running out while the daemon recovers sessions and builds the base venv,
// which takes seconds on hardware and minutes under emulation. It returns
// a function that stops the extensions.
func startupGrace(log *slog.Logger) (stop func()) {
	const step = 30 * time.Second
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(step / 3)
		defer t.Stop()
		for {
			notify(log, fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", step.Microseconds()))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done) }
}
