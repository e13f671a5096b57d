package sandbox

import (
	"fmt"
	"math"
)

// resolveLimits fills a request's unset limits from the defaults and caps
// the set ones at the maximums.
func resolveLimits(req *Limits, def, max Limits) (Limits, error) {
	l := def
	if req == nil {
		return l, nil
	}
	if math.IsNaN(req.CPUs) || math.IsInf(req.CPUs, 0) {
		return l, fmt.Errorf("%w: limits.cpus must be a finite number", ErrInvalid)
	}
	if req.CPUs < 0 || req.MemoryMB < 0 || req.Pids < 0 || req.TmpMB < 0 {
		return l, fmt.Errorf("%w: limits must not be negative", ErrInvalid)
	}
	if req.CPUs > 0 {
		l.CPUs = min(req.CPUs, max.CPUs)
	}
	pick := func(v, max int64, cur *int64) {
		if v > 0 {
			*cur = min(v, max)
		}
	}
	pick(req.MemoryMB, max.MemoryMB, &l.MemoryMB)
	pick(req.Pids, max.Pids, &l.Pids)
	pick(req.TmpMB, max.TmpMB, &l.TmpMB)
	switch {
	case l.CPUs < 0.01:
		return l, fmt.Errorf("%w: limits.cpus must be at least 0.01", ErrInvalid)
	case l.MemoryMB < 32:
		return l, fmt.Errorf("%w: limits.memory_mb must be at least 32", ErrInvalid)
	case l.Pids < 8:
		return l, fmt.Errorf("%w: limits.pids must be at least 8", ErrInvalid)
	case l.TmpMB < 1:
		return l, fmt.Errorf("%w: limits.tmp_mb must be at least 1", ErrInvalid)
	}
	return l, nil
}
