package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMedian(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{"none", nil, 0},
		{"one", []time.Duration{3 * ms}, 3 * ms},
		{"odd, unsorted", []time.Duration{9 * ms, 1 * ms, 5 * ms}, 5 * ms},
		{"even: the mean of the middle two", []time.Duration{4 * ms, 1 * ms, 2 * ms, 100 * ms}, 3 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tc.in...)
			assert.Equal(t, tc.want, median(tc.in), "median")
			assert.Equal(t, in, tc.in, "the samples keep their order")
		})
	}
	assert.Equal(t, 2.5, median([]float64{4, 1, 2, 3}), "median of floats")
}

func TestFormats(t *testing.T) {
	assert.Equal(t, "2.35 ms", ms(2346*time.Microsecond))
	assert.Equal(t, "23.5 ms", ms(23460*time.Microsecond))
	assert.Equal(t, "235 ms", ms(234600*time.Microsecond))
	assert.Equal(t, "0.094", ratio(94, 1000))
	assert.Equal(t, "0.51", ratio(51, 100))
	assert.Equal(t, "12", ratio(120, 10))
	assert.Equal(t, "–", ratio(1, 0), "no peer")
	assert.Equal(t, "1.50 MiB", mib(1.5*(1<<20)))
}

// TestAlternateTakesTurns: each side goes first every other sample, after
// the warm-ups, and a failure stops the run.
func TestAlternateTakesTurns(t *testing.T) {
	var order []string
	ours := func() error { order = append(order, "o"); return nil }
	peer := func() error { order = append(order, "p"); return nil }
	o, p, err := alternate(context.Background(), 4, ours, peer)
	require.NoError(t, err)
	assert.Len(t, o, 4, "our samples")
	assert.Len(t, p, 4, "the peer's samples")
	assert.Equal(t, []string{"o", "p", "o", "p", "o", "p", "o", "p", "p", "o", "o", "p", "p", "o"}, order)

	boom := errors.New("boom")
	_, _, err = alternate(context.Background(), 4, ours, func() error { return boom })
	assert.ErrorIs(t, err, boom, "a failing peer stops the run")
}

func TestThroughputCountsEveryClient(t *testing.T) {
	calls := make([]int, 3)
	rate, n, err := throughput(context.Background(), 3, 20*time.Millisecond, func(i int) error {
		calls[i]++
		time.Sleep(time.Millisecond) // a call's work, not a synchronisation
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, calls[0]+calls[1]+calls[2], n, "every call is counted")
	for i, c := range calls {
		assert.Positive(t, c, "client %d ran", i)
	}
	assert.Positive(t, rate, "a rate")
}
