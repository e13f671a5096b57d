package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
)

// TestStreamedExecThroughTheDaemon streams a command printing five lines a
// second apart and checks that each arrives before the next is printed:
// the command itself stamps each line, so the check is about delivery.
func TestStreamedExecThroughTheDaemon(t *testing.T) {
	setup(t)
	s := createSession(t, "streamer", "stream1")
	c := client.New(suite.socket)

	type arrival struct {
		line string
		at   time.Time
	}
	var got []arrival
	start := time.Now()
	res, err := c.ExecStream(context.Background(), s.ID, api.ExecRequest{
		Command: `for i in 1 2 3 4 5; do echo "line $i"; sleep 1; done`, TimeoutSec: 30,
	}, func(ev api.ExecEvent) error {
		if ev.Type == api.EventStdout {
			for _, l := range strings.Split(strings.TrimSuffix(ev.Data, "\n"), "\n") {
				got = append(got, arrival{l, time.Now()})
			}
		}
		return nil
	})
	require.NoError(t, err, "stream")
	assert.Equal(t, 0, res.ExitCode, "exit code")
	require.Len(t, got, 5, "five lines: %+v", got)
	for i, a := range got {
		assert.Equal(t, fmt.Sprintf("line %d", i+1), a.line, "line %d in order", i+1)
		// Line i+1 is printed at about i seconds; line i+2 a second later.
		assert.Less(t, a.at.Sub(start), time.Duration(i)*time.Second+900*time.Millisecond,
			"line %d arrived before the next one was printed", i+1)
	}
}

func TestCancelledStreamLeavesNoProcess(t *testing.T) {
	setup(t)
	s := createSession(t, "canceller", "cancel1")
	c := client.New(suite.socket)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errCh := make(chan error, 1)
	go func() {
		_, err := c.ExecStream(ctx, s.ID, api.ExecRequest{
			Command: `setsid sleep 1000 & echo started; sleep 1000`, TimeoutSec: 600,
		}, func(ev api.ExecEvent) error {
			if strings.Contains(ev.Data, "started") {
				cancel() // the client goes away mid-stream
			}
			return nil
		})
		errCh <- err
	}()
	select {
	case err := <-errCh:
		assert.True(t, errors.Is(err, context.Canceled), "the stream ends with the cancel: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end when the request was cancelled")
	}
	require.Eventually(t, func() bool {
		procs, err := readSessionProcs(s.UserID, s.ID)
		return err == nil && len(procs) == 1
	}, 10*time.Second, 50*time.Millisecond, "only the sandbox's PID 1 is left: %v", sessionProcs(t, s.UserID, s.ID))
}

func TestFilesThroughTheDaemon(t *testing.T) {
	setup(t)
	s := createSession(t, "filer", "files1")
	c := client.New(suite.socket)
	ctx := context.Background()

	blob := make([]byte, 50<<20)
	_, err := rand.Read(blob)
	require.NoError(t, err, "random data")
	sum := sha256.Sum256(blob)
	res, err := c.WriteFile(ctx, s.ID, "", "out/blob.bin", bytes.NewReader(blob), true)
	require.NoError(t, err, "upload 50 MiB")
	assert.Equal(t, fmt.Sprintf("%x", sum), res.SHA256, "sha256 of the upload")
	body, err := c.ReadFile(ctx, s.ID, "", "/workspace/out/blob.bin", 0, 0)
	require.NoError(t, err, "download")
	h := sha256.New()
	_, err = io.Copy(h, body)
	body.Close()
	require.NoError(t, err, "read the download")
	assert.Equal(t, sum[:], h.Sum(nil), "sha256 of the download")

	inside := execIn(t, s.ID, "sha256sum /workspace/out/blob.bin | cut -d' ' -f1; stat -c %u /workspace/out/blob.bin; id -u", 30)
	lines := strings.Split(inside.Stdout, "\n")
	require.Len(t, lines, 4, "three lines: %q", inside.Stdout)
	assert.Equal(t, fmt.Sprintf("%x", sum), lines[0], "the same file inside")
	assert.Equal(t, lines[2], lines[1], "owned by the user the commands run as")

	_, err = c.ReadFile(ctx, s.ID, "", "../../../../etc/passwd", 0, 0)
	assert.ErrorIs(t, err, api.ErrPermission, "a path leaving the workspace is refused")
}
