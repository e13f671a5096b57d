package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// warmups are the untimed calls of each operation before its samples.
const warmups = 3

// median is the middle sample (the mean of the two middle ones for an
// even count).
func median[T time.Duration | float64](d []T) T {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// timed runs op and says how long it took.
func timed(op func() error) (time.Duration, error) {
	start := time.Now()
	err := op()
	return time.Since(start), err
}

// alternate times ours and peer n times each, one after the other, each
// going first in turn, after a few untimed warm-up calls of each.
func alternate(ctx context.Context, n int, ours, peer func() error) (o, p []time.Duration, err error) {
	for range warmups {
		if err := errors.Join(ours(), peer()); err != nil {
			return nil, nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		first, second := &o, &p
		fa, fb := ours, peer
		if i%2 == 1 {
			first, second, fa, fb = second, first, fb, fa
		}
		d, err := timed(fa)
		if err != nil {
			return nil, nil, err
		}
		*first = append(*first, d)
		if d, err = timed(fb); err != nil {
			return nil, nil, err
		}
		*second = append(*second, d)
	}
	return o, p, nil
}

// throughput runs op(i) in a loop on each of clients goroutines until d
// has passed, and says how many calls completed per second (the time is
// until the last call ended) and how many completed.
func throughput(ctx context.Context, clients int, d time.Duration, op func(i int) error) (perSecond float64, calls int, err error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	counts := make([]int, clients)
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := op(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				counts[i]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return 0, 0, err
	}
	for _, c := range counts {
		calls += c
	}
	return float64(calls) / elapsed.Seconds(), calls, nil
}

// ms formats a duration in milliseconds, with the precision a median of a
// few dozen samples on a shared machine deserves.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	r := a / b
	switch {
	case r < 0.1:
		return fmt.Sprintf("%.3f", r)
	case r < 10:
		return fmt.Sprintf("%.2f", r)
	default:
		return fmt.Sprintf("%.0f", r)
	}
}

func mib(b float64) string { return fmt.Sprintf("%.2f MiB", b/(1<<20)) }
