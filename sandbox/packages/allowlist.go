package packages

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

// maxAllowListSize bounds the allow-list file read into memory.
const maxAllowListSize = 1 << 20

// ErrAllowList is wrapped by every allow-list parse error.
var ErrAllowList = errors.New("bad allow-list")

// LineError is a bad allow-list line.
type LineError struct {
	Line int
	Text string
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %q: %v", e.Line, e.Text, e.Err)
}

func (e *LineError) Unwrap() []error { return []error{ErrAllowList, e.Err} }

// AllowList is a parsed allow-list: one PEP 440 requirement (name and
// optional version specifier) per allowed project.
type AllowList struct {
	rules map[string]rule
	text  []byte
}

type rule struct {
	line int
	req  pyreq.Requirement
}

// commentPattern is a comment as pip reads one in requirement files: "#"
// at the start of a line or after white space.
var commentPattern = regexp.MustCompile(`(^|\s)#.*$`)

// ParseAllowList parses allow-list text: one requirement per line, "#"
// comments and blank lines ignored. Extras, markers, options and
// duplicate projects are errors; every error names the line.
func ParseAllowList(text []byte) (*AllowList, error) {
	l := &AllowList{rules: map[string]rule{}, text: text}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), maxAllowListSize)
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		line := strings.TrimSpace(commentPattern.ReplaceAllString(raw, ""))
		if line == "" {
			continue
		}
		bad := func(err error) error { return &LineError{Line: n, Text: strings.TrimSpace(raw), Err: err} }
		if strings.HasPrefix(line, "-") {
			return nil, bad(errors.New("options are not supported; write one requirement per line"))
		}
		req, err := pyreq.ParseRequirement(line)
		if err != nil {
			return nil, bad(err)
		}
		switch {
		case len(req.Extras) > 0:
			return nil, bad(errors.New("extras have no meaning in the allow-list"))
		case req.Marker != nil:
			return nil, bad(errors.New("environment markers are not supported in the allow-list"))
		}
		if prev, dup := l.rules[req.Key()]; dup {
			return nil, bad(fmt.Errorf("%s is already listed on line %d", req.Name, prev.line))
		}
		l.rules[req.Key()] = rule{line: n, req: req}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %w", ErrAllowList, n+1, err)
	}
	return l, nil
}

// Listed says whether the project is on the list at all.
func (l *AllowList) Listed(name string) bool {
	_, ok := l.rules[pyreq.Normalize(name)]
	return ok
}

// Names are the normalised names of the listed projects, sorted.
func (l *AllowList) Names() []string {
	names := make([]string, 0, len(l.rules))
	for k := range l.rules {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Rule describes the list's line for a project, for messages.
func (l *AllowList) Rule(name string) string {
	r, ok := l.rules[pyreq.Normalize(name)]
	if !ok {
		return fmt.Sprintf("%s is not on the package allow-list", name)
	}
	return fmt.Sprintf("the allow-list's line %d says %s", r.line, r.req)
}

// Text is the file's content as parsed, for the copy sessions read.
func (l *AllowList) Text() []byte { return l.text }

// Allows says whether version of the project may be installed, with a
// reason naming the list's line either way. Pre-releases are allowed only
// when the line names one (PEP 440).
func (l *AllowList) Allows(name, version string) (bool, string) {
	r, ok := l.rules[pyreq.Normalize(name)]
	if !ok {
		return false, fmt.Sprintf("%s is not on the package allow-list", name)
	}
	v, err := pyreq.ParseVersion(version)
	if err != nil {
		return false, fmt.Sprintf("%s %s: %v", name, version, err)
	}
	if !r.req.Specifier.Contains(v) {
		if v.IsPreRelease() && r.req.Specifier.ContainsAny(v) {
			return false, fmt.Sprintf("%s %s is a pre-release, which the allow-list's line %d (%s) does not name", name, version, r.line, r.req)
		}
		return false, fmt.Sprintf("%s %s is not allowed: %s", name, version, l.Rule(name))
	}
	return true, fmt.Sprintf("%s %s is allowed: %s", name, version, l.Rule(name))
}

// AllowFile is the allow-list file, parsed again whenever it changes
// (checked by inode, size, mtime and ctime on each Load).
type AllowFile struct {
	path string

	mu   sync.Mutex
	key  fileKey
	list *AllowList
}

type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime time.Time
}

func keyOf(fi os.FileInfo) fileKey {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{size: fi.Size(), mtime: fi.ModTime()}
	}
	return fileKey{
		dev: st.Dev, ino: st.Ino, size: st.Size,
		mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
	}
}

// NewAllowFile returns the allow-list at path; nothing is read until Load.
func NewAllowFile(path string) *AllowFile { return &AllowFile{path: path} }

// Path is the file's path.
func (f *AllowFile) Path() string { return f.path }

// Load returns the list as the file now says. A missing or bad file is an
// error: nothing is allowed until it is fixed.
func (f *AllowFile) Load() (*AllowList, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	f.mu.Lock()
	if f.list != nil && f.key == keyOf(fi) {
		l := f.list
		f.mu.Unlock()
		return l, nil
	}
	f.mu.Unlock()
	// The key is taken from the open file, so a change racing the read
	// is seen again by the next Load.
	fd, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	defer fd.Close()
	fi, err = fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("allow-list %s: %w", f.path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("allow-list %s: not a regular file", f.path)
	}
	text, err := io.ReadAll(io.LimitReader(fd, maxAllowListSize+1))
	if err != nil {
		return nil, fmt.Errorf("allow-list %s: %w", f.path, err)
	}
	if len(text) > maxAllowListSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrAllowList, f.path, maxAllowListSize)
	}
	l, err := ParseAllowList(text)
	if err != nil {
		return nil, fmt.Errorf("allow-list %s: %w", f.path, err)
	}
	f.mu.Lock()
	f.key, f.list = keyOf(fi), l
	f.mu.Unlock()
	return l, nil
}
