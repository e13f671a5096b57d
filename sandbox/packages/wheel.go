package packages

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"path"
	"strings"

	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

// ErrBadWheel is wrapped by every error about a file that is not a
// well-formed wheel.
var ErrBadWheel = errors.New("not a well-formed wheel")

// maxMetadataSize bounds the METADATA and WHEEL files read from a wheel.
const maxMetadataSize = 4 << 20

// WheelName is a wheel's file name taken apart (PEP 427):
// {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl.
type WheelName struct {
	Distribution string
	Version      string
	Build        string
	Python       string
	ABI          string
	Platform     string
}

// ParseWheelName parses a wheel's file name (no directory).
func ParseWheelName(filename string) (WheelName, error) {
	stem, ok := strings.CutSuffix(filename, ".whl")
	if !ok || strings.ContainsAny(filename, "/\x00") {
		return WheelName{}, fmt.Errorf("%w: %q does not end in .whl", ErrBadWheel, filename)
	}
	parts := strings.Split(stem, "-")
	var w WheelName
	switch len(parts) {
	case 5:
		w = WheelName{parts[0], parts[1], "", parts[2], parts[3], parts[4]}
	case 6:
		w = WheelName{parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]}
		if w.Build == "" || w.Build[0] < '0' || w.Build[0] > '9' {
			return WheelName{}, fmt.Errorf("%w: %q: build tag %q must start with a digit", ErrBadWheel, filename, w.Build)
		}
	default:
		return WheelName{}, fmt.Errorf("%w: %q is not name-version(-build)-python-abi-platform.whl", ErrBadWheel, filename)
	}
	if !pyreq.ValidName(w.Distribution) {
		return WheelName{}, fmt.Errorf("%w: %q: %q is not a project name", ErrBadWheel, filename, w.Distribution)
	}
	if _, err := pyreq.ParseVersion(w.Version); err != nil {
		return WheelName{}, fmt.Errorf("%w: %q: %w", ErrBadWheel, filename, err)
	}
	for _, tag := range []string{w.Python, w.ABI, w.Platform} {
		if tag == "" {
			return WheelName{}, fmt.Errorf("%w: %q has an empty tag", ErrBadWheel, filename)
		}
	}
	return w, nil
}

// Tags are the wheel's compatibility tags, expanded from compressed
// tag sets ("py2.py3-none-any" is two tags).
func (w WheelName) Tags() []string {
	var tags []string
	for _, py := range strings.Split(w.Python, ".") {
		for _, abi := range strings.Split(w.ABI, ".") {
			for _, plat := range strings.Split(w.Platform, ".") {
				tags = append(tags, py+"-"+abi+"-"+plat)
			}
		}
	}
	return tags
}

// Dist is one wheel in the cache, as its index records it.
type Dist struct {
	// Name and Version are the METADATA's, as written.
	Name     string `json:"name"`
	Version  string `json:"version"`
	Filename string `json:"filename"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	// RequiresDist are the METADATA's Requires-Dist lines.
	RequiresDist   []string `json:"requires_dist,omitempty"`
	RequiresPython string   `json:"requires_python,omitempty"`
}

// Key is the normalised project name.
func (d Dist) Key() string { return pyreq.Normalize(d.Name) }

// inspectWheel checks that the file at p, named filename, is a wheel
// whose name and version agree with its METADATA, and returns what the
// index records of it (without hash and size).
func inspectWheel(p, filename string) (Dist, error) {
	wn, err := ParseWheelName(filename)
	if err != nil {
		return Dist{}, err
	}
	zr, err := zip.OpenReader(p)
	if err != nil {
		return Dist{}, fmt.Errorf("%w: %s: %w", ErrBadWheel, filename, err)
	}
	defer zr.Close()
	infoDir := ""
	for _, f := range zr.File {
		top, rest, ok := strings.Cut(f.Name, "/")
		if !ok || !strings.HasSuffix(top, ".dist-info") || rest != "METADATA" {
			continue
		}
		if infoDir != "" {
			return Dist{}, fmt.Errorf("%w: %s has more than one .dist-info directory", ErrBadWheel, filename)
		}
		infoDir = top
	}
	if infoDir == "" {
		return Dist{}, fmt.Errorf("%w: %s has no .dist-info/METADATA", ErrBadWheel, filename)
	}
	infoName, infoVersion, ok := strings.Cut(strings.TrimSuffix(infoDir, ".dist-info"), "-")
	if !ok || pyreq.Normalize(infoName) != pyreq.Normalize(wn.Distribution) || !sameVersion(infoVersion, wn.Version) {
		return Dist{}, fmt.Errorf("%w: %s: its %s does not match the file name", ErrBadWheel, filename, infoDir)
	}
	meta, err := readHeaders(&zr.Reader, path.Join(infoDir, "METADATA"))
	if err != nil {
		return Dist{}, fmt.Errorf("%w: %s: %w", ErrBadWheel, filename, err)
	}
	wheelMeta, err := readHeaders(&zr.Reader, path.Join(infoDir, "WHEEL"))
	if err != nil {
		return Dist{}, fmt.Errorf("%w: %s: %w", ErrBadWheel, filename, err)
	}
	if v := wheelMeta.Get("Wheel-Version"); !strings.HasPrefix(v, "1.") {
		return Dist{}, fmt.Errorf("%w: %s: Wheel-Version %q is not 1.x", ErrBadWheel, filename, v)
	}
	if _, err := zr.Open(path.Join(infoDir, "RECORD")); err != nil {
		return Dist{}, fmt.Errorf("%w: %s has no RECORD", ErrBadWheel, filename)
	}
	d := Dist{
		Name:           meta.Get("Name"),
		Version:        meta.Get("Version"),
		Filename:       filename,
		RequiresDist:   meta.Values("Requires-Dist"),
		RequiresPython: meta.Get("Requires-Python"),
	}
	switch {
	case !pyreq.ValidName(d.Name):
		return Dist{}, fmt.Errorf("%w: %s: METADATA Name %q is not a project name", ErrBadWheel, filename, d.Name)
	case pyreq.Normalize(d.Name) != pyreq.Normalize(wn.Distribution):
		return Dist{}, fmt.Errorf("%w: %s: METADATA names %q, the file name %q", ErrBadWheel, filename, d.Name, wn.Distribution)
	case !sameVersion(d.Version, wn.Version):
		return Dist{}, fmt.Errorf("%w: %s: METADATA has version %q, the file name %q", ErrBadWheel, filename, d.Version, wn.Version)
	}
	// Checked now so that planning never meets a line it cannot read.
	for _, r := range d.RequiresDist {
		if _, err := pyreq.ParseRequirement(r); err != nil {
			return Dist{}, fmt.Errorf("%w: %s: Requires-Dist: %w", ErrBadWheel, filename, err)
		}
	}
	if _, err := pyreq.ParseSpecifier(d.RequiresPython); err != nil {
		return Dist{}, fmt.Errorf("%w: %s: Requires-Python: %w", ErrBadWheel, filename, err)
	}
	return d, nil
}

func sameVersion(a, b string) bool {
	va, err := pyreq.ParseVersion(a)
	if err != nil {
		return false
	}
	vb, err := pyreq.ParseVersion(b)
	return err == nil && va.Equal(vb)
}

// readHeaders reads an email-header file (METADATA, WHEEL) from the zip.
func readHeaders(zr *zip.Reader, name string) (textproto.MIMEHeader, error) {
	f, err := zr.Open(name)
	if err != nil {
		return nil, fmt.Errorf("no %s", name)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxMetadataSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxMetadataSize)
	}
	// The headers end at the first blank line (the body is the
	// description); a file of headers alone needs one added.
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	if head, _, ok := bytes.Cut(data, []byte("\n\n")); ok {
		data = head
	}
	data = append(bytes.TrimRight(data, "\n"), '\n', '\n')
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(data))).ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return h, nil
}
