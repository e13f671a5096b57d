package pyreq

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMarker is wrapped by every marker parse or evaluation error.
var ErrMarker = errors.New("bad environment marker")

// Environment holds the values of PEP 508 marker variables for one
// interpreter, keyed by variable name ("python_version", "sys_platform",
// ...). "extra" is set per evaluation by WithExtra.
type Environment map[string]string

// WithExtra returns a copy of env with "extra" set to e.
func (env Environment) WithExtra(e string) Environment {
	out := make(Environment, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out["extra"] = e
	return out
}

// markerVariables are PEP 508's names, with the legacy dotted spellings
// packaging still accepts mapped onto them.
var markerVariables = map[string]string{
	"implementation_name":            "implementation_name",
	"implementation_version":         "implementation_version",
	"os_name":                        "os_name",
	"platform_machine":               "platform_machine",
	"platform_python_implementation": "platform_python_implementation",
	"platform_release":               "platform_release",
	"platform_system":                "platform_system",
	"platform_version":               "platform_version",
	"python_full_version":            "python_full_version",
	"python_version":                 "python_version",
	"sys_platform":                   "sys_platform",
	"extra":                          "extra",
	"os.name":                        "os_name",
	"sys.platform":                   "sys_platform",
	"platform.version":               "platform_version",
	"platform.machine":               "platform_machine",
	"platform.python_implementation": "platform_python_implementation",
	"python_implementation":          "platform_python_implementation",
}

// Marker is a parsed PEP 508 environment marker.
type Marker struct {
	text string
	root markerNode
}

// String is the marker as written, trimmed.
func (m *Marker) String() string { return m.text }

// Evaluate says whether the marker holds in env. A variable env lacks is
// an error, as in packaging.
func (m *Marker) Evaluate(env Environment) (bool, error) {
	return m.root.eval(env)
}

type markerNode interface {
	eval(env Environment) (bool, error)
}

type markerOr struct{ left, right markerNode }

func (n markerOr) eval(env Environment) (bool, error) {
	l, err := n.left.eval(env)
	if err != nil || l {
		return l, err
	}
	return n.right.eval(env)
}

type markerAnd struct{ left, right markerNode }

func (n markerAnd) eval(env Environment) (bool, error) {
	l, err := n.left.eval(env)
	if err != nil || !l {
		return l, err
	}
	return n.right.eval(env)
}

// markerValue is one side of a comparison: a variable or a string.
type markerValue struct {
	variable string
	literal  string
}

func (v markerValue) resolve(env Environment) (string, error) {
	if v.variable == "" {
		return v.literal, nil
	}
	s, ok := env[v.variable]
	if !ok {
		return "", fmt.Errorf("%w: variable %s is not defined", ErrMarker, v.variable)
	}
	return s, nil
}

type markerCompare struct {
	left, right markerValue
	op          string
}

func (n markerCompare) eval(env Environment) (bool, error) {
	l, err := n.left.resolve(env)
	if err != nil {
		return false, err
	}
	r, err := n.right.resolve(env)
	if err != nil {
		return false, err
	}
	// Extras compare by normalised name (PEP 685).
	if n.left.variable == "extra" || n.right.variable == "extra" {
		l, r = Normalize(l), Normalize(r)
	}
	switch n.op {
	case "in":
		return strings.Contains(r, l), nil
	case "not in":
		return !strings.Contains(r, l), nil
	}
	// As in packaging: a PEP 440 comparison when the right side makes a
	// specifier and the left a version, else Python's string comparison.
	if spec, err := ParseSpecifier(n.op + r); err == nil {
		if v, err := ParseVersion(l); err == nil {
			return spec.ContainsAny(v), nil
		}
	}
	switch n.op {
	case "==":
		return l == r, nil
	case "!=":
		return l != r, nil
	case "<":
		return l < r, nil
	case "<=":
		return l <= r, nil
	case ">":
		return l > r, nil
	case ">=":
		return l >= r, nil
	}
	return false, fmt.Errorf("%w: cannot compare %q %s %q", ErrMarker, l, n.op, r)
}

// ParseMarker parses a PEP 508 marker expression.
func ParseMarker(s string) (*Marker, error) {
	toks, err := lexMarker(s)
	if err != nil {
		return nil, err
	}
	p := &markerParser{toks: toks}
	root, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected %q", ErrMarker, p.toks[p.pos].text)
	}
	return &Marker{text: strings.TrimSpace(s), root: root}, nil
}

type tokenKind int

const (
	tokString tokenKind = iota
	tokWord
	tokOp
	tokOpen
	tokClose
)

type token struct {
	kind tokenKind
	text string
}

// maxMarkerDepth bounds parenthesis nesting, so a hostile marker cannot
// exhaust the stack.
const maxMarkerDepth = 32

func lexMarker(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			toks = append(toks, token{tokOpen, "("})
			i++
		case c == ')':
			toks = append(toks, token{tokClose, ")"})
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated string in %q", ErrMarker, s)
			}
			toks = append(toks, token{tokString, s[i+1 : i+1+end]})
			i += end + 2
		case strings.IndexByte("<>=!~", c) >= 0:
			j := i
			for j < len(s) && strings.IndexByte("<>=!~", s[j]) >= 0 {
				j++
			}
			toks = append(toks, token{tokOp, s[i:j]})
			i = j
		case c == '_' || c == '.' || isAlnum(c):
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '.' || isAlnum(s[j])) {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("%w: unexpected %q in %q", ErrMarker, c, s)
		}
	}
	return toks, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

type markerParser struct {
	toks []token
	pos  int
}

func (p *markerParser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *markerParser) word(w string) bool {
	t, ok := p.peek()
	if ok && t.kind == tokWord && t.text == w {
		p.pos++
		return true
	}
	return false
}

func (p *markerParser) or(depth int) (markerNode, error) {
	left, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.word("or") {
		right, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		left = markerOr{left, right}
	}
	return left, nil
}

func (p *markerParser) and(depth int) (markerNode, error) {
	left, err := p.atom(depth)
	if err != nil {
		return nil, err
	}
	for p.word("and") {
		right, err := p.atom(depth)
		if err != nil {
			return nil, err
		}
		left = markerAnd{left, right}
	}
	return left, nil
}

func (p *markerParser) atom(depth int) (markerNode, error) {
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("%w: expression ends early", ErrMarker)
	}
	if t.kind == tokOpen {
		if depth >= maxMarkerDepth {
			return nil, fmt.Errorf("%w: nested deeper than %d", ErrMarker, maxMarkerDepth)
		}
		p.pos++
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if t, ok := p.peek(); !ok || t.kind != tokClose {
			return nil, fmt.Errorf("%w: missing )", ErrMarker)
		}
		p.pos++
		return n, nil
	}
	left, err := p.value()
	if err != nil {
		return nil, err
	}
	op, err := p.operator()
	if err != nil {
		return nil, err
	}
	right, err := p.value()
	if err != nil {
		return nil, err
	}
	if left.variable == "" && right.variable == "" {
		return nil, fmt.Errorf("%w: comparison of two strings", ErrMarker)
	}
	return markerCompare{left: left, right: right, op: op}, nil
}

func (p *markerParser) value() (markerValue, error) {
	t, ok := p.peek()
	if !ok {
		return markerValue{}, fmt.Errorf("%w: expression ends early", ErrMarker)
	}
	switch t.kind {
	case tokString:
		p.pos++
		return markerValue{literal: t.text}, nil
	case tokWord:
		name, known := markerVariables[t.text]
		if !known {
			return markerValue{}, fmt.Errorf("%w: unknown variable %q", ErrMarker, t.text)
		}
		p.pos++
		return markerValue{variable: name}, nil
	}
	return markerValue{}, fmt.Errorf("%w: expected a variable or a string, found %q", ErrMarker, t.text)
}

func (p *markerParser) operator() (string, error) {
	t, ok := p.peek()
	if !ok {
		return "", fmt.Errorf("%w: expression ends early", ErrMarker)
	}
	switch {
	case t.kind == tokOp:
		switch t.text {
		case "~=", "===", "==", "!=", "<=", ">=", "<", ">":
			p.pos++
			return t.text, nil
		}
	case t.kind == tokWord && t.text == "in":
		p.pos++
		return "in", nil
	case t.kind == tokWord && t.text == "not":
		p.pos++
		if !p.word("in") {
			return "", fmt.Errorf("%w: expected \"in\" after \"not\"", ErrMarker)
		}
		return "not in", nil
	}
	return "", fmt.Errorf("%w: %q is not a marker operator", ErrMarker, t.text)
}
