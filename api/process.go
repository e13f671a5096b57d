package api

import "time"

// Streaming exec: POST /v1/sessions/{id}/exec with "Accept:
// application/x-ndjson" answers with one ExecEvent per line as the
// command runs, ending with an "exit" event that carries the result.
const NDJSON = "application/x-ndjson"

// Exec event types.
const (
	EventStdout = "stdout"
	EventStderr = "stderr"
	EventExit   = "exit"
	// EventError ends a stream that failed after it began.
	EventError = "error"
)

// ExecEvent is one line of a streamed exec. Output is in Data when it is
// valid UTF-8 and in DataB64 (standard base64) when it is not, so that any
// byte string is carried losslessly.
type ExecEvent struct {
	Type    string `json:"type"`
	Data    string `json:"data,omitempty"`
	DataB64 string `json:"data_b64,omitempty"`
	// Result is set on the exit event; its Stdout and Stderr are empty,
	// since the output went out as events.
	Result *ExecResult `json:"result,omitempty"`
	// Error and Code are set on the error event.
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// StartProcessRequest is the body of POST /v1/sessions/{id}/processes: a
// background command, as for exec but without stdin or timeout.
type StartProcessRequest struct {
	Argv    []string          `json:"argv,omitempty"`
	Command string            `json:"command,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
}

// Process statuses.
const (
	StatusRunning = "running"
	StatusExited  = "exited"
	StatusKilled  = "killed"
)

// Process describes one background process of a session.
type Process struct {
	// ID names the process within its session.
	ID string `json:"id"`
	// PID is the command's process id inside the sandbox.
	PID       int       `json:"pid"`
	Command   string    `json:"command"`
	Status    string    `json:"status"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Signal    string    `json:"signal,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// CPUMS, PeakMemoryBytes and OOMKilled are what the process's tree
	// used, as in ExecResult; set once it ended.
	CPUMS           int64  `json:"cpu_ms,omitempty"`
	PeakMemoryBytes uint64 `json:"peak_memory_bytes,omitempty"`
	OOMKilled       bool   `json:"oom_killed,omitempty"`
}

// ProcessList is the answer of GET …/processes.
type ProcessList struct {
	Processes []Process `json:"processes"`
}

// ProcessOutput is the answer of GET …/processes/{pid}/output and of
// DELETE …/processes/{pid}: the output lines not read before (stdout and
// stderr merged in arrival order, without line endings), then the
// process's state.
type ProcessOutput struct {
	Process
	Lines []string `json:"lines"`
	// Dropped counts lines that fell out of the bounded buffer before
	// they were read.
	Dropped int64 `json:"dropped"`
}
