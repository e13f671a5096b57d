package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
)

// killPointEnv names the step (sandbox.Faults) at which a test daemon
// kills itself with SIGKILL, as a crash would.
const killPointEnv = "SANDBOXD_TEST_KILL_AT"

// killPoint is a sandbox.Faults that kills the process at one step.
type killPoint string

func killPoints(step string) killPoint { return killPoint(step) }

func (k killPoint) At(step string) error {
	if k != "" && string(k) == step {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
	return nil
}

// crashAt replaces the running daemon by one that dies at step, and
// returns it.
func crashAt(t *testing.T, step string) *daemon {
	t.Helper()
	return crashAtWith(t, suite.config, step)
}

// crashAtWith is crashAt with the configuration file config.
func crashAtWith(t *testing.T, config, step string) *daemon {
	t.Helper()
	if cur, err := currentDaemon(); err == nil {
		require.NoError(t, cur.stop(stopTimeout), "stop the daemon")
	}
	d, err := spawnDaemonWith(config, killPointEnv+"="+step)
	require.NoError(t, err, "start a daemon that dies at %s", step)
	suite.mu.Lock()
	suite.cur = d
	suite.mu.Unlock()
	return d
}

// awaitDeath waits for a daemon that is to kill itself.
func awaitDeath(t *testing.T, d *daemon, step string) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		d.kill()
		require.Fail(t, "no crash", "the daemon did not die at %s", step)
	}
}

// wholeOrGone checks that a session after a crash either works with its
// files or left nothing: no directory, container state, cgroup or process.
func wholeOrGone(t *testing.T, user, id string) bool {
	t.Helper()
	status, data := call(t, http.MethodGet, "/v1/sessions/"+id, "")
	if status == http.StatusOK {
		var s api.Session
		require.NoError(t, json.Unmarshal(data, &s), "decode %s", data)
		require.Equal(t, "running", s.Status, "a session that survived works: %s", data)
		res := execIn(t, id, "echo ok", 30)
		require.Equal(t, "ok\n", res.Stdout, "%s runs commands: %q", id, res.Stderr)
		return true
	}
	require.Equal(t, http.StatusNotFound, status, "a session is there or not found: %s", data)
	assert.NoDirExists(t, filepath.Join(suite.state, "workspaces", "user_"+user, "sessions", id), "no directory of %s", id)
	assert.NoDirExists(t, filepath.Join(suite.state, "workspaces", "user_"+user, "disk", "sessions", id), "no disk of %s", id)
	assert.NoDirExists(t, filepath.Join(suite.state, "containers", id), "no container state of %s", id)
	for _, r := range cgroupRoots() {
		assert.NoDirExists(t, filepath.Join(r, sessionCgroup(user, id)), "no cgroup of %s", id)
	}
	return false
}

// nothingStray checks that every container state and session cgroup left
// belongs to a listed session, or to a ready sandbox of the daemon that
// runs.
func nothingStray(t *testing.T) {
	t.Helper()
	ids := listSessionIDs(t)
	for _, id := range sessionContainers(t) {
		assert.Contains(t, ids, id, "container state %s belongs to a session", id)
	}
	for _, dir := range cgroupDirsBelowParent() {
		if strings.Count(strings.TrimPrefix(dir, suite.parent), "/") == 2 {
			assert.Contains(t, ids, filepath.Base(dir), "cgroup %s belongs to a session", dir)
		}
	}
	d := mustDaemon(t)
	for _, id := range readyBoxes(t) {
		state, err := os.ReadFile(filepath.Join(suite.state, "containers", id, "state.json"))
		if err != nil {
			continue // being created
		}
		var st struct {
			Pid int `json:"init_process_pid"`
		}
		require.NoError(t, json.Unmarshal(state, &st), "state of %s", id)
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", st.Pid))
		require.NoError(t, err, "the PID 1 of ready sandbox %s runs", id)
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		assert.Equal(t, strconv.Itoa(d.pid()), fields[1], "ready sandbox %s is the running daemon's", id)
	}
}

// readyBoxes lists the ready sandboxes' container state.
func readyBoxes(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(suite.state, "containers"))
	require.NoError(t, err, "list container state")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), readyPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// createUntilDeath creates sessions when a ready sandbox is there, until
// a create gets no answer (the daemon died at its kill point), and returns
// that session's id. A create that found none ready served (its own
// sandbox) and is deleted.
func createUntilDeath(t *testing.T, d *daemon, user, prefix string) string {
	t.Helper()
	for i := range 20 {
		id := fmt.Sprintf("%s-%d", prefix, i)
		require.Eventually(t, func() bool {
			for _, b := range readyBoxes(t) {
				if _, err := os.Stat(filepath.Join(suite.state, "agents", b+".sock")); err == nil {
					return true
				}
			}
			return false
		}, time.Minute, 5*time.Millisecond, "a sandbox gets ready")
		status, _, err := request(context.Background(), http.MethodPost, "/v1/sessions",
			mustJSON(t, api.CreateSessionRequest{UserID: user, SessionID: id}))
		if err != nil {
			return id
		}
		require.Equal(t, http.StatusCreated, status, "create %s", id)
		deleteIfThere(t, id)
	}
	require.Fail(t, "no bind", "no create bound a ready sandbox")
	return ""
}

func deleteIfThere(t *testing.T, id string) {
	t.Helper()
	status, data := call(t, http.MethodDelete, "/v1/sessions/"+id, "")
	require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, status, "delete %s: %s", id, data)
}

// TestKillPointsLeaveNothingHalfDone kills the daemon at every step of
// create and delete, several times each, and checks after each restart
// that the session works or left nothing, and that the same id can be
// used again at once.
func TestKillPointsLeaveNothingHalfDone(t *testing.T) {
	setup(t)
	const user = "kp-user"
	for round := range 3 {
		// A ready sandbox is bound to a session at create:bind; one is
		// started at ready:created, while the daemon starts.
		id := fmt.Sprintf("kp-c%d-create-bind", round)
		d := crashAt(t, "create:bind")
		require.NoError(t, d.ready(), "daemon up")
		id = createUntilDeath(t, d, user, id)
		awaitDeath(t, d, "create:bind")
		mustDaemon(t)
		wholeOrGone(t, user, id)
		nothingStray(t)
		deleteIfThere(t, id)
		createSession(t, user, id)
		deleteIfThere(t, id)
		d = crashAt(t, "ready:created")
		awaitDeath(t, d, "ready:created")
		mustDaemon(t)
		nothingStray(t)
		for _, step := range []string{"create:dir", "create:sandbox", "sandbox:created", "create:commit"} {
			id := fmt.Sprintf("kp-c%d-%s", round, strings.ReplaceAll(step, ":", "-"))
			// A session starts its own sandbox (sandbox:created) only
			// where none is ready.
			config := suite.config
			if step == "sandbox:created" {
				config = suite.configOwn
			}
			d := crashAtWith(t, config, step)
			require.NoError(t, d.ready(), "daemon up")
			_, _, err := request(context.Background(), http.MethodPost, "/v1/sessions",
				mustJSON(t, api.CreateSessionRequest{UserID: user, SessionID: id}))
			assert.Error(t, err, "the create at %s gets no answer", step)
			awaitDeath(t, d, step)
			mustDaemon(t)
			wholeOrGone(t, user, id)
			nothingStray(t)
			deleteIfThere(t, id)
			createSession(t, user, id)
			deleteIfThere(t, id)
		}
		for _, step := range []string{"delete:sandbox", "delete:keep", "delete:remove"} {
			id := fmt.Sprintf("kp-d%d-%s", round, strings.ReplaceAll(step, ":", "-"))
			createSession(t, user, id)
			res := execIn(t, id, "echo "+id+" > /workspace/"+id+".pdf", 30)
			require.Equal(t, 0, res.ExitCode, "write a file to keep: %s", res.Stderr)
			d := crashAt(t, step)
			require.NoError(t, d.ready(), "daemon up")
			_, _, err := request(context.Background(), http.MethodDelete, "/v1/sessions/"+id+"?keep_files=true", "")
			assert.Error(t, err, "the delete at %s gets no answer", step)
			awaitDeath(t, d, step)
			mustDaemon(t)
			assert.False(t, wholeOrGone(t, user, id), "a delete that began is finished")
			kept, err := os.ReadFile(filepath.Join(suite.state, "workspaces", "user_"+user, "disk", "shared_files", "outputs", id+".pdf"))
			require.NoError(t, err, "the file was kept")
			assert.Equal(t, id+"\n", string(kept), "once, whole")
			nothingStray(t)
		}
	}
}

// TestKillDuringRecovery kills the daemon while it recovers sessions of
// every kind (adopted, restarted, a delete to finish), then checks that
// the next start recovers them all.
func TestKillDuringRecovery(t *testing.T) {
	setup(t)
	// Two users: the test daemons allow two sessions each.
	users := map[string]string{"kr-adopt": "kr-u1", "kr-dead": "kr-u1", "kr-del": "kr-u2"}
	for _, id := range []string{"kr-adopt", "kr-dead", "kr-del"} {
		createSession(t, users[id], id)
		res := execIn(t, id, "echo "+id+" > /workspace/"+id+".pdf", 30)
		require.Equal(t, 0, res.ExitCode, "write a file: %s", res.Stderr)
	}
	// kr-del: a delete the daemon died in.
	d2 := crashAt(t, "delete:keep")
	require.NoError(t, d2.ready(), "daemon up")
	_, _, _ = request(context.Background(), http.MethodDelete, "/v1/sessions/kr-del?keep_files=true", "")
	awaitDeath(t, d2, "delete:keep")
	// kr-dead: its sandbox dies while no daemon runs.
	require.NoError(t, syscall.Kill(sandboxInit(t, users["kr-dead"], "kr-dead"), syscall.SIGKILL), "kill kr-dead's sandbox")

	// Sessions are recovered in no fixed order, so a later kill point may
	// find its session already recovered by a daemon that died after it:
	// then that daemon serves, and is stopped.
	died := 0
	for _, id := range []string{"kr-adopt", "kr-dead", "kr-del"} {
		d := crashAt(t, "recover:"+id)
		if err := d.ready(); err != nil {
			died++
			continue
		}
		require.NoError(t, d.stop(stopTimeout), "stop a daemon that recovered everything")
	}
	assert.Positive(t, died, "at least one recovery was cut short")
	mustDaemon(t)
	for _, id := range []string{"kr-adopt", "kr-dead"} {
		assert.True(t, wholeOrGone(t, users[id], id), "%s is recovered", id)
		res := execIn(t, id, "cat /workspace/"+id+".pdf", 30)
		assert.Equal(t, id+"\n", res.Stdout, "with its files")
	}
	assert.False(t, wholeOrGone(t, users["kr-del"], "kr-del"), "the interrupted delete is finished")
	assert.FileExists(t, filepath.Join(suite.state, "workspaces", "user_kr-u2", "disk", "shared_files", "outputs", "kr-del.pdf"), "with its file kept")
	nothingStray(t)
}

// TestRandomKillsDuringCreate kills the daemon at random moments of a
// create, which includes moments inside libcontainer's own steps that no
// named kill point reaches.
func TestRandomKillsDuringCreate(t *testing.T) {
	setup(t)
	const user = "kx-user"
	for i := range 12 {
		id := fmt.Sprintf("kx-%d", i)
		d := mustDaemon(t)
		sent := make(chan struct{})
		go func() {
			close(sent)
			_, _, _ = request(context.Background(), http.MethodPost, "/v1/sessions",
				mustJSON(t, api.CreateSessionRequest{UserID: user, SessionID: id}))
		}()
		<-sent
		// A random moment of the create: this is the experiment, not a
		// synchronisation.
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
		d.kill()
		mustDaemon(t)
		wholeOrGone(t, user, id)
		nothingStray(t)
		deleteIfThere(t, id)
	}
	ids := listSessionIDs(t)
	assert.False(t, slices.ContainsFunc(ids, func(id string) bool { return strings.HasPrefix(id, "kx-") }), "all cleaned up")
	mustDaemon(t)
	assert.Eventually(t, func() bool {
		return !slices.ContainsFunc(cgroupDirsBelowParent(), func(dir string) bool { return strings.Contains(dir, "/user_"+user) })
	}, 5*time.Second, 10*time.Millisecond, "nor is the user's cgroup left")
}

// TestKillDuringExpiry kills the daemon at each step of a session's
// expiry: the next start finishes it.
func TestKillDuringExpiry(t *testing.T) {
	setup(t)
	const user = "ke-user"
	writeQuotaFile(t, user, `{"limits":{"max_session_duration_hours":0.0003}}`) // about a second
	for _, step := range []string{"expire:sandbox", "expire:keep", "expire:release"} {
		id := "ke-" + strings.ReplaceAll(step, ":", "-")
		d := crashAt(t, step)
		require.NoError(t, d.ready(), "daemon up")
		createSession(t, user, id)
		res := execIn(t, id, "echo "+id+" > /workspace/"+id+".pdf", 30)
		require.Equal(t, 0, res.ExitCode, "write a file to keep: %s", res.Stderr)
		awaitDeath(t, d, step) // the janitor expires the session within its 10 s
		mustDaemon(t)
		assert.Equal(t, "expired", sessionStatus(t, id), "the expiry is finished")
		kept, err := os.ReadFile(filepath.Join(suite.state, "workspaces", "user_"+user, "disk", "shared_files", "outputs", id+".pdf"))
		require.NoError(t, err, "the file was kept")
		assert.Equal(t, id+"\n", string(kept), "once, whole")
		assert.NoDirExists(t, filepath.Join(suite.state, "workspaces", "user_"+user, "disk", "sessions", id), "its disk given back")
		assert.NoDirExists(t, filepath.Join(suite.state, "containers", id), "no sandbox")
		status, data := call(t, http.MethodDelete, "/v1/sessions/"+id, "")
		require.Equal(t, http.StatusOK, status, "delete it: %s", data)
		nothingStray(t)
	}
}
