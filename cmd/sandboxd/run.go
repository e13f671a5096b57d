package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/journal"

	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/cmd/sandboxd/internal/config"
	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// version is set by the build (-ldflags "-X main.version=…").
var version = "dev"

const usage = `Usage: sandboxd [flags]              serve the API (the default)
       sandboxd env build [--force]  build a version of the base environment
       sandboxd packages add|fetch|ls
                                     manage the package cache
       sandboxd doctor               check that this host can sandbox
       sandboxd version

Flags:
`

// shutdownGrace bounds how long in-flight requests may take on SIGTERM.
const shutdownGrace = 30 * time.Second

// hooks are what tests give a daemon that production never does.
type hooks struct {
	// faults fails or kills the daemon at named steps (sandbox.Faults).
	faults sandbox.Faults
}

func run(args []string, h hooks) int {
	fs := flag.NewFlagSet("sandboxd", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	cfg := config.Default()
	configPath := fs.String("config", "", "YAML configuration file overriding the defaults")
	stateDir := fs.String("state-dir", "", "state root (default "+cfg.StateDir+")")
	socket := fs.String("socket", "", "API socket path (default "+cfg.Socket+")")
	socketGroup := fs.String("socket-group", "", "group owning the API socket")
	cgroupParent := fs.String("cgroup-parent", "", "absolute cgroup the sessions live under (default "+cfg.CgroupParent+")")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default "+cfg.LogLevel+")")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *configPath != "" {
		if err := cfg.Load(*configPath); err != nil {
			fmt.Fprintln(os.Stderr, "sandboxd:", err)
			return 2
		}
	}
	for flagValue, field := range map[*string]*string{
		stateDir: &cfg.StateDir, socket: &cfg.Socket, socketGroup: &cfg.SocketGroup,
		cgroupParent: &cfg.CgroupParent, logLevel: &cfg.LogLevel,
	} {
		if *flagValue != "" {
			*field = *flagValue
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		return 2
	}
	log, err := newLogger(os.Stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch rest := fs.Args(); {
	case len(rest) == 0:
		err = serve(ctx, cfg, log, h)
	case rest[0] == "version":
		fmt.Println(version)
	case rest[0] == "doctor":
		return doctor(cfg)
	case len(rest) >= 2 && rest[0] == "env" && rest[1] == "build":
		err = buildEnv(ctx, cfg, log, h, rest[2:])
	case rest[0] == "packages":
		err = packagesCommand(ctx, cfg, rest[1:], os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "sandboxd: unknown command %q\n", rest)
		fs.Usage()
		return 2
	}
	if err != nil {
		log.Error("sandboxd failed", "err", err)
		return 1
	}
	return 0
}

// newLogger logs to the journal, with structured fields, when stderr is
// connected to it (a systemd service), and as text to w otherwise.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	if ok, _ := journal.StderrIsJournalStream(); ok {
		return slog.New(newJournalHandler(l)), nil
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// newManager makes the Manager, publishing on bus (a bus of its own when
// nil).
func newManager(ctx context.Context, cfg config.Config, log *slog.Logger, h hooks, bus *events.Bus) (*sandbox.Manager, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("sandboxd must run as root: it creates namespaces, cgroups and mounts")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	sc := cfg.Sandbox(exe, version)
	sc.Logger = log
	sc.Faults = h.faults
	sc.Events = bus
	// Under systemd with Delegate=yes the unit's own cgroup is the
	// daemon's to manage, and its sessions belong beneath it.
	parent, delegated, err := cgroup.Delegated()
	if err != nil {
		return nil, err
	}
	if delegated {
		sc.CgroupParent = parent
		log.Info("using the cgroup systemd delegated", "cgroup", parent)
	}
	return sandbox.NewManager(ctx, sc)
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, h hooks) error {
	stopGrace := startupGrace(log)
	obs := newObservability(cfg, log)
	m, err := newManager(ctx, cfg, log, h, obs.bus)
	if err != nil {
		stopGrace()
		return err
	}
	defer m.Close()
	// The first start builds the shared venv; later starts find it.
	err = m.BuildBaseEnv(ctx, false)
	stopGrace()
	if err != nil {
		return err
	}
	if err := obs.metrics.Watch(m); err != nil {
		return err
	}
	stopMetrics, err := obs.serveMetrics(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		stopMetrics(sctx)
	}()
	ln, err := listen(cfg, log)
	if err != nil {
		return err
	}
	srv := server.New(m, server.Config{MaxBodyBytes: cfg.MaxBodyBytes, Logger: log, Version: version, Metrics: obs.metrics.Handler()})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "socket", ln.Addr().String(), "state_dir", cfg.StateDir, "version", version)
	notify(log, sd.SdNotifyReady)
	// A Manager whose lock is stuck stops answering Info, and the pings.
	go watchdog(ctx, log, func() bool { _ = m.Info(ctx); return true })
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Sessions keep running: a restarted daemon adopts them.
	notify(log, sd.SdNotifyStopping)
	log.Info("shutting down; sessions keep running")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return srv.Shutdown(sctx)
}

// buildEnv builds a version of the base environment. It takes the state
// tree's lock, so the daemon must be stopped: its sessions keep running
// on their versions, and the restarted daemon gives new ones this one.
func buildEnv(ctx context.Context, cfg config.Config, log *slog.Logger, h hooks, args []string) error {
	fs := flag.NewFlagSet("env build", flag.ContinueOnError)
	force := fs.Bool("force", false, "build a new version even if one exists")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := newManager(ctx, cfg, log, h, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.BuildBaseEnv(ctx, *force); err != nil {
		return err
	}
	if env := m.Info(ctx).Env; env != nil {
		fmt.Printf("base env %s (new sessions get it)\n", env.ID)
		for _, p := range env.Present {
			fmt.Printf("  has   %s %s\n", p.Name, p.Version)
		}
		for _, p := range env.Missing {
			fmt.Printf("  lacks %s: %s\n", p.Requirement, p.Reason)
		}
	}
	return nil
}

// doctor prints each check and exits non-zero when one fails.
func doctor(cfg config.Config) int {
	checks := sandbox.Doctor(cfg.Sandbox("", version))
	failed := false
	for _, c := range checks {
		failed = failed || c.Err != nil
		status := "ok  "
		detail := c.Detail
		if c.Err != nil {
			status, detail = "FAIL", c.Err.Error()
		}
		fmt.Printf("%s %-10s %s\n", status, c.Name, detail)
	}
	if err := sandbox.Healthy(checks); err != nil {
		fmt.Println("this host cannot run sandboxd sessions")
		return 1
	}
	if failed {
		fmt.Println("sandboxd runs here with the features above off")
		return 1
	}
	return 0
}
