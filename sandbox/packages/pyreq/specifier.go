// Package pyreq parses the language Python packaging speaks: project names
// (PEP 503 normalisation), versions and version specifiers (PEP 440, by
// github.com/aquasecurity/go-pep440-version), requirements and environment
// markers (PEP 508). It owns no files and no policy.
package pyreq

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	pep440 "github.com/aquasecurity/go-pep440-version"
)

// Version is a parsed PEP 440 version.
type Version = pep440.Version

// ParseVersion parses a PEP 440 version.
func ParseVersion(s string) (Version, error) {
	v, err := pep440.Parse(s)
	if err != nil {
		return Version{}, fmt.Errorf("%q is not a PEP 440 version", s)
	}
	return v, nil
}

// clausePattern is one specifier clause. The library also accepts a bare
// version, "=" and "||", none of which PEP 440 has, so clauses are checked
// here before it sees them.
var clausePattern = regexp.MustCompile(`^(~=|===|==|!=|<=|>=|<|>)\s*([^\s,;()]+)$`)

// ErrSpecifier is wrapped by every specifier parse error.
var ErrSpecifier = errors.New("bad version specifier")

// Specifier is a PEP 440 version specifier set such as ">=2.0.0,<3.0.0";
// the zero value allows every final release.
type Specifier struct {
	text   string
	set    pep440.Specifiers
	any    bool
	allPre bool
}

// ParseSpecifier parses a comma-separated PEP 440 specifier set; an empty
// string is the empty set.
func ParseSpecifier(s string) (Specifier, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Specifier{}, nil
	}
	clauses := strings.Split(s, ",")
	canon := make([]string, 0, len(clauses))
	spec := Specifier{any: true}
	for _, c := range clauses {
		c = strings.TrimSpace(c)
		m := clausePattern.FindStringSubmatch(c)
		if m == nil {
			return Specifier{}, fmt.Errorf("%w: %q: each clause is an operator (~= == != <= >= < > ===) and a version", ErrSpecifier, c)
		}
		op, ver := m[1], m[2]
		if op != "===" {
			v, err := pep440.Parse(strings.TrimSuffix(ver, ".*"))
			if err != nil {
				return Specifier{}, fmt.Errorf("%w: %q: %q is not a PEP 440 version", ErrSpecifier, c, ver)
			}
			// Like packaging: a clause naming a pre-release lets
			// pre-releases match (except through "!=").
			if op != "!=" && v.IsPreRelease() {
				spec.allPre = true
			}
		}
		if _, err := pep440.NewSpecifiers(op + ver); err != nil {
			return Specifier{}, fmt.Errorf("%w: %q: %v", ErrSpecifier, c, err)
		}
		canon = append(canon, op+ver)
	}
	spec.text = strings.Join(canon, ",")
	set, err := pep440.NewSpecifiers(spec.text)
	if err != nil {
		return Specifier{}, fmt.Errorf("%w: %q: %v", ErrSpecifier, s, err)
	}
	spec.set = set
	return spec, nil
}

// Contains says whether v satisfies every clause. Pre-releases satisfy it
// only when a clause names a pre-release, as PEP 440 asks of installers.
func (s Specifier) Contains(v Version) bool {
	if v.IsPreRelease() && !s.allPre {
		return false
	}
	return s.ContainsAny(v)
}

// ContainsAny is Contains with pre-releases treated like final releases,
// which is right for a version already chosen (an installed one, or a
// marker's variable).
func (s Specifier) ContainsAny(v Version) bool {
	if !s.any {
		return true
	}
	return s.set.Check(v)
}

// IsEmpty says whether the set has no clause.
func (s Specifier) IsEmpty() bool { return !s.any }

// Pin returns the version of a single "==V" clause without a wildcard.
func (s Specifier) Pin() (string, bool) {
	if strings.Contains(s.text, ",") || !strings.HasPrefix(s.text, "==") || strings.HasPrefix(s.text, "===") || strings.HasSuffix(s.text, ".*") {
		return "", false
	}
	return strings.TrimPrefix(s.text, "=="), true
}

// String is the set in canonical form ("" for the empty set).
func (s Specifier) String() string { return s.text }
