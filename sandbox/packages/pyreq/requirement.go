package pyreq

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrRequirement is wrapped by every requirement parse error.
var ErrRequirement = errors.New("bad requirement")

// MaxRequirementLength bounds one requirement string; longer ones are
// refused before any parsing.
const MaxRequirementLength = 1024

var (
	namePattern      = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?`)
	separatorPattern = regexp.MustCompile(`[-_.]+`)
)

// Normalize returns the PEP 503 form of a project name: lower case, runs
// of "-", "_" and "." made one "-". Two names are the same project when
// their normalised forms are equal.
func Normalize(name string) string {
	return separatorPattern.ReplaceAllString(strings.ToLower(name), "-")
}

// ValidName says whether name is a valid project name (PEP 508).
func ValidName(name string) bool {
	return namePattern.FindString(name) == name && name != ""
}

// Requirement is a PEP 508 dependency specification without a URL:
// name, extras, version specifier and environment marker.
type Requirement struct {
	// Name is the project name as written.
	Name string
	// Extras are the requested extras, normalised and sorted.
	Extras    []string
	Specifier Specifier
	// Marker is nil when the requirement has none.
	Marker *Marker
}

// Key is the normalised project name.
func (r Requirement) Key() string { return Normalize(r.Name) }

// String is the requirement in canonical form.
func (r Requirement) String() string {
	var b strings.Builder
	b.WriteString(r.Name)
	if len(r.Extras) > 0 {
		b.WriteString("[" + strings.Join(r.Extras, ",") + "]")
	}
	b.WriteString(r.Specifier.String())
	if r.Marker != nil {
		b.WriteString("; " + r.Marker.String())
	}
	return b.String()
}

// ParseRequirement parses one requirement such as
// `requests[socks]>=2.31,<3; python_version >= "3.8"`. Direct references
// (`name @ url`) are refused: every package comes from the local cache.
func ParseRequirement(s string) (Requirement, error) {
	if len(s) > MaxRequirementLength {
		return Requirement{}, fmt.Errorf("%w: longer than %d characters", ErrRequirement, MaxRequirementLength)
	}
	body, markerText, hasMarker := strings.Cut(s, ";")
	body = strings.TrimSpace(body)
	name := namePattern.FindString(body)
	if name == "" {
		return Requirement{}, fmt.Errorf("%w: %q does not start with a project name", ErrRequirement, strings.TrimSpace(s))
	}
	r := Requirement{Name: name}
	rest := strings.TrimSpace(body[len(name):])
	if strings.HasPrefix(rest, "[") {
		inner, after, ok := strings.Cut(rest[1:], "]")
		if !ok {
			return Requirement{}, fmt.Errorf("%w: %q: unclosed extras", ErrRequirement, body)
		}
		for _, e := range strings.Split(inner, ",") {
			e = strings.TrimSpace(e)
			if e == "" && strings.TrimSpace(inner) == "" {
				break
			}
			if !ValidName(e) {
				return Requirement{}, fmt.Errorf("%w: %q: extra %q is not a valid name", ErrRequirement, body, e)
			}
			r.Extras = append(r.Extras, Normalize(e))
		}
		sort.Strings(r.Extras)
		rest = strings.TrimSpace(after)
	}
	if strings.HasPrefix(rest, "@") {
		return Requirement{}, fmt.Errorf("%w: %q: direct references (name @ url) are not supported; packages come from the local cache", ErrRequirement, body)
	}
	if strings.HasPrefix(rest, "(") {
		if !strings.HasSuffix(rest, ")") {
			return Requirement{}, fmt.Errorf("%w: %q: unclosed parenthesis", ErrRequirement, body)
		}
		rest = strings.TrimSpace(rest[1 : len(rest)-1])
	}
	spec, err := ParseSpecifier(rest)
	if err != nil {
		return Requirement{}, fmt.Errorf("%w: %q: %w", ErrRequirement, body, err)
	}
	r.Specifier = spec
	if hasMarker {
		m, err := ParseMarker(markerText)
		if err != nil {
			return Requirement{}, fmt.Errorf("%w: %q: %w", ErrRequirement, strings.TrimSpace(s), err)
		}
		r.Marker = m
	}
	return r, nil
}

// Applies says whether the requirement's marker holds in env for a
// distribution installed with the given extras (PEP 508: it applies when
// it holds with no extra or with any one of them).
func (r Requirement) Applies(env Environment, extras []string) (bool, error) {
	if r.Marker == nil {
		return true, nil
	}
	for _, e := range append([]string{""}, extras...) {
		ok, err := r.Marker.Evaluate(env.WithExtra(e))
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}
