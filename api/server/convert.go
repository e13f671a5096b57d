package server

import (
	"fmt"
	"math"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// Conversions between the wire (package api) and the domain (package
// sandbox). Requests are converted after decoding, answers before
// encoding; the only checks here are those of representation (a number the
// domain's types cannot hold). What a value may be is the domain's to say.

func wireLimits(l sandbox.Limits) api.Limits {
	return api.Limits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, TmpMB: l.TmpMB}
}

func domainLimits(l *api.Limits) *sandbox.Limits {
	if l == nil {
		return nil
	}
	return &sandbox.Limits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, TmpMB: l.TmpMB}
}

func wireInfo(i sandbox.Info) api.Info {
	return api.Info{
		Version:       i.Version,
		APIVersion:    api.Version,
		CgroupMode:    i.CgroupMode,
		CgroupParent:  i.CgroupParent,
		Controllers:   nonNil(i.Controllers),
		DefaultLimits: wireLimits(i.DefaultLimits),
		MaxLimits:     wireLimits(i.MaxLimits),
		Sessions:      i.Sessions,
		Env:           wireEnvPtr(i.Env),
		QuotaMode:     i.QuotaMode,
	}
}

func wireSession(s sandbox.Session) api.Session {
	return api.Session{
		ID:        s.ID,
		UserID:    s.UserID,
		CreatedAt: s.CreatedAt,
		Limits:    wireLimits(s.Limits),
		Status:    string(s.State),
		Reason:    s.Reason,
		Workspace: s.Workspace,
	}
}

func wireDelete(r sandbox.DeleteResult) api.DeleteSessionResult {
	out := api.DeleteSessionResult{ID: r.ID, KeptFiles: nonNil(r.Kept), NotKept: []api.NotKept{}}
	for _, n := range r.NotKept {
		out.NotKept = append(out.NotKept, api.NotKept{Name: n.Name, Reason: n.Reason})
	}
	return out
}

// seconds converts a wire duration in seconds. JSON has no NaN or
// infinities, but a huge number would overflow time.Duration.
func seconds(name string, v float64) (time.Duration, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > float64(math.MaxInt64)/float64(time.Second) {
		return 0, fmt.Errorf("%s %g is out of range: %w", name, v, api.ErrInvalidArgument)
	}
	return time.Duration(v * float64(time.Second)), nil
}

func domainCommand(argv []string, command, cwd string, env map[string]string) sandbox.Command {
	return sandbox.Command{Argv: argv, Shell: command, Cwd: cwd, Env: env}
}

func domainExec(r api.ExecRequest) (sandbox.ExecRequest, error) {
	timeout, err := seconds("timeout", r.TimeoutSec)
	if err != nil {
		return sandbox.ExecRequest{}, err
	}
	return sandbox.ExecRequest{
		Command: domainCommand(r.Argv, r.Command, r.Cwd, r.Env),
		Stdin:   r.Stdin,
		Timeout: timeout,
	}, nil
}

func wireExec(r sandbox.ExecResult) api.ExecResult {
	return api.ExecResult{
		ExitCode:        r.ExitCode,
		Signal:          r.Signal,
		TimedOut:        r.TimedOut,
		OOMKilled:       r.OOMKilled,
		DurationMS:      r.Duration.Milliseconds(),
		CPUMS:           r.CPU.Milliseconds(),
		PeakMemoryBytes: r.PeakMemory,
		Stdout:          string(r.Stdout),
		Stderr:          string(r.Stderr),
		StdoutTruncated: r.StdoutTruncated,
		StderrTruncated: r.StderrTruncated,
	}
}

func wireProcess(p sandbox.Process) api.Process {
	return api.Process{
		ID:        p.ID,
		PID:       p.PID,
		Command:   p.Command,
		Status:    string(p.State),
		ExitCode:  p.ExitCode,
		Signal:    p.Signal,
		StartedAt: p.StartedAt,
		EndedAt:   p.EndedAt,

		CPUMS:           p.CPU.Milliseconds(),
		PeakMemoryBytes: p.PeakMemory,
		OOMKilled:       p.OOMKilled,
	}
}

func wireOutput(o sandbox.ProcessOutput) api.ProcessOutput {
	return api.ProcessOutput{Process: wireProcess(o.Process), Lines: nonNil(o.Lines), Dropped: o.Dropped}
}

func wireFileInfo(i sandbox.FileInfo) api.FileInfo {
	return api.FileInfo{
		Name:       i.Name,
		Path:       i.Path,
		Type:       string(i.Type),
		Size:       i.Size,
		Mode:       fmt.Sprintf("%04o", i.Mode.Perm()),
		ModTime:    i.ModTime.UTC(),
		LinkTarget: i.LinkTarget,
	}
}

func wireFileList(l sandbox.FileList) api.FileList {
	out := api.FileList{Root: string(l.Root), Path: l.Path, Entries: make([]api.FileInfo, 0, len(l.Entries)), Truncated: l.Truncated}
	for _, e := range l.Entries {
		out.Entries = append(out.Entries, wireFileInfo(e))
	}
	return out
}

func wireText(t sandbox.TextFile) api.TextFile {
	out := api.TextFile{Path: t.Path, Lines: make([]api.TextLine, 0, len(t.Lines)), TotalLines: t.TotalLines}
	for _, l := range t.Lines {
		out.Lines = append(out.Lines, api.TextLine{Number: l.Number, Text: l.Text})
	}
	return out
}

func wireWrite(r sandbox.WriteResult) api.WriteResult {
	return api.WriteResult{Path: r.Path, Size: r.Size, SHA256: r.SHA256}
}

func wireEdit(r sandbox.EditResult) api.EditResult {
	return api.EditResult{Path: r.Path, Replacements: r.Replacements, Size: r.Size, SHA256: r.SHA256}
}

// nonNil makes an absent list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
