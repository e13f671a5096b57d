package server

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// queryBool parses query parameter name with strconv.ParseBool; absent is
// false.
func queryBool(q url.Values, name string) (bool, error) {
	if !q.Has(name) {
		return false, nil
	}
	v, err := strconv.ParseBool(q.Get(name))
	if err != nil {
		return false, fmt.Errorf("%s %q: want true or false: %w", name, q.Get(name), api.ErrInvalidArgument)
	}
	return v, nil
}

// queryCount parses query parameter name as a non-negative integer; absent
// is def.
func queryCount(q url.Values, name string, def int64) (int64, error) {
	if !q.Has(name) {
		return def, nil
	}
	v, err := strconv.ParseInt(q.Get(name), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s %q: want a non-negative integer: %w", name, q.Get(name), api.ErrInvalidArgument)
	}
	return v, nil
}

// queryInt parses query parameter name as an integer; absent is def. What
// values make sense is the backend's to say.
func queryInt(q url.Values, name string, def int) (int, error) {
	if !q.Has(name) {
		return def, nil
	}
	v, err := strconv.Atoi(q.Get(name))
	if err != nil {
		return 0, fmt.Errorf("%s %q: want an integer: %w", name, q.Get(name), api.ErrInvalidArgument)
	}
	return v, nil
}

// queryDuration parses query parameter name as a Go duration ("5s",
// "500ms") or a plain number of seconds ("5", "0.5"), which is what a
// Python caller most naturally sends; absent is def. Whether a negative
// one makes sense is the backend's to say.
func queryDuration(q url.Values, name string, def time.Duration) (time.Duration, error) {
	if !q.Has(name) {
		return def, nil
	}
	v := q.Get(name)
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || math.IsNaN(secs) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("%s %q: want a duration such as 5s or 500ms, or a number of seconds: %w", name, v, api.ErrInvalidArgument)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	return d, nil
}
