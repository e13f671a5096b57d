package sandbox

import (
	"fmt"
	"regexp"
)

// maxIDLength bounds ids so that paths and cgroup names stay short.
const maxIDLength = 64

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// validateID checks that id is 1..maxIDLength characters of [A-Za-z0-9_-],
// starting with a letter or digit: such an id can never name a parent
// directory, a hidden file or a path with more than one component, so it
// is safe in the state tree's paths and in cgroup names.
func validateID(kind, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalid, kind)
	case len(id) > maxIDLength:
		return fmt.Errorf("%w: %s is longer than %d characters", ErrInvalid, kind, maxIDLength)
	case !idPattern.MatchString(id):
		return fmt.Errorf("%w: %s %q may hold only letters, digits, '_' and '-', and must start with a letter or digit", ErrInvalid, kind, id)
	}
	return nil
}
