package sandbox

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"alice", true},
		{"A-1_b", true},
		{"7", true},
		{strings.Repeat("a", maxIDLength), true},
		{"", false},
		{strings.Repeat("a", maxIDLength+1), false},
		{"../x", false},
		{"a/b", false},
		{"..", false},
		{".hidden", false},
		{"-flag", false},
		{"_x", false},
		{"a\x00b", false},
		{"a b", false},
		{"é", false},
	}
	for _, tt := range tests {
		err := validateID("user_id", tt.id)
		if tt.ok {
			assert.NoError(t, err, "%q is valid", tt.id)
		} else {
			assert.ErrorIs(t, err, ErrInvalid, "%q is refused", tt.id)
		}
	}
}
