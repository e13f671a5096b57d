package packages

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

// MaxRequirements bounds the requirements of one install request.
const MaxRequirements = 64

// Installed is what an environment already has, as its probe found it.
type Installed struct {
	// Packages maps normalised project names to installed versions.
	Packages map[string]string
	// Markers are the interpreter's PEP 508 marker values.
	Markers pyreq.Environment
	// Tags are the wheel tags the interpreter supports, most preferred
	// first; when empty, every wheel is taken as compatible.
	Tags []string
}

// Pick is one wheel the plan installs.
type Pick struct {
	Dist
	// Hashes are the sha256 of every presented wheel of this version
	// (platform variants included), for pip's --require-hashes.
	Hashes []string
	// RequiredBy is "name version" of the package that needs it, or
	// empty when it was asked for.
	RequiredBy string
	// Extras are the extras its dependencies were resolved with.
	Extras []string
}

// Satisfied is a requirement the environment already meets.
type Satisfied struct {
	Name        string
	Version     string
	Requirement string
	RequiredBy  string
}

// Plan is what an install will do.
type Plan struct {
	Install   []Pick
	Satisfied []Satisfied
}

// Plan resolves requirements against the allow-list and the presented
// cache for an environment that has what have says.
//
// Policy: what the environment already has in a version the requirement
// accepts is left as it is (as pip would; nothing is installed, so the
// list has nothing to refuse), be it asked for or a dependency.
// Otherwise the package must be on the allow-list, and the newest cached
// version satisfying both the requirement and the list is chosen
// (pre-releases only when the requirement or the list names one). Markers are evaluated for have's interpreter; wheels must match
// its tags and Requires-Python. Resolution is greedy (first choice wins,
// no backtracking): a later requirement the chosen version does not meet
// is an UnavailableError naming both, which pinning resolves.
//
// Refusals are *NotAllowedError (errors.Is ErrNotAllowed) naming the
// package, version and, for a dependency, its dependent;
// *UnavailableError when the list allows it but the cache cannot
// satisfy it; ErrBadRequest for unreadable requirements.
func (c *Cache) Plan(requirements []string, have Installed) (Plan, error) {
	if len(requirements) == 0 {
		return Plan{}, fmt.Errorf("%w: no requirements", ErrBadRequest)
	}
	if len(requirements) > MaxRequirements {
		return Plan{}, fmt.Errorf("%w: more than %d requirements", ErrBadRequest, MaxRequirements)
	}
	var wants []want
	for _, s := range requirements {
		r, err := pyreq.ParseRequirement(s)
		if err != nil {
			return Plan{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		wants = append(wants, want{req: r})
	}
	list, err := c.list.Load()
	if err != nil {
		return Plan{}, err
	}
	presented, err := c.Present()
	if err != nil {
		return Plan{}, err
	}
	idx, err := c.readIndex()
	if err != nil {
		return Plan{}, err
	}
	rv := &resolver{
		list:   list,
		have:   have,
		cands:  candidates(idx.Dists, presented, have),
		picked: map[string]int{},
	}
	if err := rv.resolve(wants); err != nil {
		return Plan{}, err
	}
	return rv.plan, nil
}

// Requirements is the hash-locked requirements file pip reads (from
// stdin) for the plan: one "name==version --hash=sha256:..." per wheel.
func (p Plan) Requirements() []byte {
	var b strings.Builder
	for _, pk := range p.Install {
		b.WriteString(pk.Name + "==" + pk.Version)
		for _, h := range pk.Hashes {
			b.WriteString(" --hash=sha256:" + h)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Command is the argv that carries out the plan inside a sandbox whose
// venv python is python (VenvPython) and whose presented cache is at
// wheelsDir (WheelsDir); its stdin must be Requirements(). pip installs
// exactly the planned wheels (--no-deps), from nowhere but wheelsDir,
// and checks each against its recorded hash. An empty plan needs no
// command: it returns nil.
func (p Plan) Command(python, wheelsDir string) []string {
	if len(p.Install) == 0 {
		return nil
	}
	return []string{
		python, "-m", "pip", "install",
		"--no-index", "--find-links", wheelsDir,
		"--no-deps", "--require-hashes", "--only-binary", ":all:",
		"--no-cache-dir", "--disable-pip-version-check", "--no-input",
		"--requirement", "/dev/stdin",
	}
}

type want struct {
	req pyreq.Requirement
	// by is "name version" of the dependent; empty when asked for.
	by string
}

type cand struct {
	dist    Dist
	version pyreq.Version
	rank    int
	// shown says the wheel is in the presented directory (allowed and
	// verified).
	shown bool
}

// candidates groups the cached wheels usable by have's interpreter by
// project, newest version and best tag first.
func candidates(dists []Dist, presented Presented, have Installed) map[string][]cand {
	shown := map[string]bool{}
	for _, d := range presented.Wheels {
		shown[d.Filename] = true
	}
	rankOf := map[string]int{}
	for i, t := range have.Tags {
		if _, ok := rankOf[t]; !ok {
			rankOf[t] = i
		}
	}
	pyVersion, pyErr := pyreq.ParseVersion(have.Markers["python_full_version"])
	out := map[string][]cand{}
	for _, d := range dists {
		v, err := pyreq.ParseVersion(d.Version)
		if err != nil {
			continue
		}
		wn, err := ParseWheelName(d.Filename)
		if err != nil {
			continue
		}
		rank, ok := 0, len(have.Tags) == 0
		if !ok {
			rank = len(have.Tags)
			for _, t := range wn.Tags() {
				if r, found := rankOf[t]; found && r < rank {
					rank, ok = r, true
				}
			}
		}
		if !ok {
			continue
		}
		if d.RequiresPython != "" && pyErr == nil {
			if spec, err := pyreq.ParseSpecifier(d.RequiresPython); err != nil || !spec.ContainsAny(pyVersion) {
				continue
			}
		}
		out[d.Key()] = append(out[d.Key()], cand{dist: d, version: v, rank: rank, shown: shown[d.Filename]})
	}
	for _, cs := range out {
		sort.SliceStable(cs, func(i, j int) bool {
			if c := cs[i].version.Compare(cs[j].version); c != 0 {
				return c > 0
			}
			return cs[i].rank < cs[j].rank
		})
	}
	return out
}

type resolver struct {
	list   *AllowList
	have   Installed
	cands  map[string][]cand
	picked map[string]int // key → index in plan.Install
	plan   Plan
}

func (rv *resolver) resolve(queue []want) error {
	for len(queue) > 0 {
		w := queue[0]
		queue = queue[1:]
		more, err := rv.one(w)
		if err != nil {
			return err
		}
		queue = append(queue, more...)
	}
	return nil
}

// one resolves one requirement and returns the dependencies it adds.
func (rv *resolver) one(w want) ([]want, error) {
	req, key := w.req, w.req.Key()
	if w.by == "" && req.Marker != nil {
		ok, err := req.Applies(rv.have.Markers, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadRequest, req, err)
		}
		if !ok {
			return nil, nil
		}
	}
	if i, ok := rv.picked[key]; ok {
		pk := &rv.plan.Install[i]
		v, _ := pyreq.ParseVersion(pk.Version)
		if !req.Specifier.ContainsAny(v) {
			return nil, &UnavailableError{Name: req.Name, Requirement: req.String(), RequiredBy: w.by,
				Reason: fmt.Sprintf("conflicts with %s %s, already chosen%s; pin a version that satisfies both", pk.Name, pk.Version, requiredBy(pk.RequiredBy))}
		}
		extras := union(pk.Extras, req.Extras)
		if len(extras) == len(pk.Extras) {
			return nil, nil
		}
		pk.Extras = extras
		return rv.dependencies(pk.Dist, extras)
	}
	if have, ok := rv.have.Packages[key]; ok {
		if v, err := pyreq.ParseVersion(have); err == nil && req.Specifier.ContainsAny(v) {
			rv.plan.Satisfied = append(rv.plan.Satisfied, Satisfied{Name: req.Name, Version: have, Requirement: req.String(), RequiredBy: w.by})
			return nil, nil
		}
	}
	if !rv.list.Listed(key) {
		reason := rv.list.Rule(req.Name)
		if w.by != "" {
			if have, ok := rv.have.Packages[key]; ok {
				reason += fmt.Sprintf(", and the environment's %s %s does not satisfy %s", req.Name, have, req)
			} else {
				reason += ", and the environment does not have it"
			}
		}
		return nil, &NotAllowedError{Name: req.Name, RequiredBy: w.by, Reason: reason}
	}
	var refused *cand
	var unverified bool
	for i := range rv.cands[key] {
		cd := &rv.cands[key][i]
		if !req.Specifier.Contains(cd.version) {
			continue
		}
		if ok, _ := rv.list.Allows(cd.dist.Name, cd.dist.Version); !ok {
			if refused == nil {
				refused = cd
			}
			continue
		}
		if !cd.shown {
			unverified = true
			continue
		}
		return rv.pick(cd, w)
	}
	if refused != nil {
		_, reason := rv.list.Allows(refused.dist.Name, refused.dist.Version)
		return nil, &NotAllowedError{Name: refused.dist.Name, Version: refused.dist.Version, RequiredBy: w.by, Reason: reason}
	}
	if pin, ok := req.Specifier.Pin(); ok {
		if allowed, reason := rv.list.Allows(req.Name, pin); !allowed {
			return nil, &NotAllowedError{Name: req.Name, Version: pin, RequiredBy: w.by, Reason: reason}
		}
	}
	reason := "no wheel in the package cache satisfies it and the allow-list"
	if unverified {
		reason += " (a cached wheel that fits failed its hash check and is withheld)"
	}
	if vs := rv.cachedVersions(key); vs != "" {
		reason += "; cached for this environment: " + vs
	}
	reason += "; " + rv.list.Rule(req.Name)
	return nil, &UnavailableError{Name: req.Name, Requirement: req.String(), RequiredBy: w.by, Reason: reason}
}

func (rv *resolver) pick(cd *cand, w want) ([]want, error) {
	pk := Pick{Dist: cd.dist, RequiredBy: w.by, Extras: union(nil, w.req.Extras)}
	for _, other := range rv.cands[cd.dist.Key()] {
		if other.shown && other.version.Equal(cd.version) {
			pk.Hashes = append(pk.Hashes, other.dist.SHA256)
		}
	}
	rv.picked[cd.dist.Key()] = len(rv.plan.Install)
	rv.plan.Install = append(rv.plan.Install, pk)
	return rv.dependencies(cd.dist, pk.Extras)
}

// dependencies are d's Requires-Dist that apply to the environment with
// the given extras.
func (rv *resolver) dependencies(d Dist, extras []string) ([]want, error) {
	by := d.Name + " " + d.Version
	var out []want
	for _, line := range d.RequiresDist {
		r, err := pyreq.ParseRequirement(line)
		if err != nil {
			return nil, &UnavailableError{Name: d.Name, Requirement: by, Reason: fmt.Sprintf("unreadable Requires-Dist %q: %v", line, err)}
		}
		ok, err := r.Applies(rv.have.Markers, extras)
		if err != nil {
			return nil, &UnavailableError{Name: d.Name, Requirement: by, Reason: fmt.Sprintf("Requires-Dist %q: %v", line, err)}
		}
		if ok {
			out = append(out, want{req: r, by: by})
		}
	}
	return out, nil
}

func (rv *resolver) cachedVersions(key string) string {
	var vs []string
	for _, cd := range rv.cands[key] {
		vs = append(vs, cd.dist.Version)
	}
	return strings.Join(vs, ", ")
}

func requiredBy(by string) string {
	if by == "" {
		return " as asked"
	}
	return " for " + by
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
