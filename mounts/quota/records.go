package quota

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// FirstProjectID is the first project id the package gives out; ids
// below it are left to the host's administrator (/etc/projid).
// probeProjectID, just below, is the one Detect tries.
const (
	FirstProjectID = 1 << 20
	probeProjectID = FirstProjectID - 1
)

// projectRecord is a user's projects, kept in the user's directory (on
// the state filesystem, root-only, outside anything a sandbox reaches):
// what a restarted daemon needs to find and re-apply the limits.
type projectRecord struct {
	// Budget is U, the last one applied.
	Budget   int64                     `json:"budget"`
	Shared   uint32                    `json:"shared"`
	Sessions map[string]projectSession `json:"sessions"`
}

type projectSession struct {
	ID    uint32 `json:"id"`
	Bytes int64  `json:"bytes"`
	Files int64  `json:"files"`
}

// reserved is the sum of the sessions' reservations.
func (r *projectRecord) reserved() int64 {
	var n int64
	for _, s := range r.Sessions {
		n += s.Bytes
	}
	return n
}

// loadRecord reads path; a missing file is an empty record.
func loadRecord(path string) (*projectRecord, error) {
	r := &projectRecord{Sessions: map[string]projectSession{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Sessions == nil {
		r.Sessions = map[string]projectSession{}
	}
	return r, nil
}

// save writes the record atomically and durably.
func (r *projectRecord) save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic replaces path with data: a synced temporary file renamed
// over it, then the directory synced, so a crash leaves the old or the
// new content.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// idAllocator gives out project ids, never twice: the next one is kept
// in a file, written before the id is used.
type idAllocator struct {
	path string
	mu   sync.Mutex // guards the file; held for one small write
}

func (a *idAllocator) next(inUse func(uint32) bool) (uint32, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := uint64(FirstProjectID)
	b, err := os.ReadFile(a.path)
	switch {
	case err == nil:
		if n, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err != nil {
			return 0, fmt.Errorf("%s: %w", a.path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, err
	}
	// An id with usage belongs to someone already (a record lost with a
	// restored state directory): skip it.
	for ; n < math.MaxUint32 && inUse(uint32(n)); n++ {
	}
	if n < FirstProjectID || n >= math.MaxUint32 {
		return 0, fmt.Errorf("%s: project ids exhausted", a.path)
	}
	if err := writeAtomic(a.path, []byte(strconv.FormatUint(n+1, 10)+"\n")); err != nil {
		return 0, err
	}
	return uint32(n), nil
}
