package mounts

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// outputsName is the directory of shared_files that kept files go to.
const outputsName = "outputs"

// maxNameTries bounds the search for a free name in outputs/.
const maxNameTries = 10000

// KeptOutputs is what KeepOutputs did.
type KeptOutputs struct {
	// Kept are the names the files got in outputs/.
	Kept []string
	// NotKept are the files of a listed kind left where they were.
	NotKept []NotKept
	// Repaired, when set, says what stood at outputs/ instead of a
	// directory and where it was moved aside; a new outputs/ was made.
	Repaired string
}

// NotKept is a file KeepOutputs left where it was, and why.
type NotKept struct {
	Name string
	Err  error
}

// KeepOutputs copies the regular single-link files at the top of a
// session's files whose extension is in exts (case-insensitive, with the
// dot: ".pdf") into the outputs/ directory of the user's sharedFiles,
// never replacing a file there: a taken name gets a "-N" before its
// extension. A copy, not a rename: the session's files and shared_files
// are different filesystems or quota projects (a rename between them is
// EXDEV), and a copy is charged to shared_files' limit like any write. The
// originals stay, to go with the session's tree.
//
// outputs/ is opened without following; made, owned by o, if missing;
// and if it is anything but a directory (a symlink, a file, a FIFO) that
// entry itself is renamed aside to "outputs.invalid-N" and a new outputs/
// made, which Repaired reports. Copies are created in the directory's
// descriptor (O_EXCL, O_NOFOLLOW, owned by o), so a name swapped meanwhile
// changes nothing, and read from the very file that was checked.
//
// A file that cannot be kept — a symlink, FIFO, device, directory or hard
// link, a failed copy (shared_files full: ENOSPC or EDQUOT; the partial
// copy is removed), or no outputs/ to be had however often it is repaired
// — is reported in NotKept and the others go on. The error is
// only for the daemon's own I/O: reading files, or opening or making
// outputs/.
func KeepOutputs(files, sharedFiles *Dir, exts []string, o Owner) (KeptOutputs, error) {
	return keepInto(files, sharedFiles, outputsName, exts, o)
}

func keepInto(files, parent *Dir, outName string, exts []string, o Owner) (KeptOutputs, error) {
	var res KeptOutputs
	names, err := files.names()
	if err != nil {
		return res, fmt.Errorf("keep files: %w", err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !hasExt(n, exts) })
	if len(names) == 0 {
		return res, nil
	}
	slices.Sort(names)
	out, repaired, err := openOutputs(parent, outName, o)
	res.Repaired = repaired
	if errors.Is(err, errNoOutputs) {
		for _, name := range names {
			res.NotKept = append(res.NotKept, NotKept{Name: name, Err: err})
		}
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("keep files: %w", err)
	}
	defer out.Close()
	for _, name := range names {
		kept, err := keepFile(files, name, out, o)
		if err != nil {
			res.NotKept = append(res.NotKept, NotKept{Name: name, Err: err})
			continue
		}
		res.Kept = append(res.Kept, kept)
	}
	return res, nil
}

func hasExt(name string, exts []string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range exts {
		if ext != "" && ext == strings.ToLower(e) {
			return true
		}
	}
	return false
}

// errNoOutputs: what a sandbox keeps putting at outputs/ leaves no
// directory to keep files in. It is each file's reason, not the caller's
// error: it is the sandbox's doing.
var errNoOutputs = errors.New("no outputs directory to keep files in")

// openOutputs opens parent's directory name, making it when missing and
// moving aside whatever else stands there. It says what it repaired.
func openOutputs(parent *Dir, name string, o Owner) (*Dir, string, error) {
	var repaired []string
	note := func() string { return strings.Join(repaired, "; ") }
	for range maxAttempts {
		out, err := parent.OpenDir(name)
		if errors.Is(err, fs.ErrNotExist) {
			out, err = parent.Mkdir(name, 0o750, o)
			if errors.Is(err, fs.ErrExist) {
				continue // made or planted meanwhile: look again
			}
		}
		if err == nil {
			return out, note(), nil
		}
		var typeErr *TypeError
		if !errors.As(err, &typeErr) {
			return nil, note(), err
		}
		aside, err := moveAside(parent, name)
		if err != nil {
			return nil, note(), err
		}
		if aside != "" {
			repaired = append(repaired, fmt.Sprintf("%s was %s, not a directory: moved aside to %s and made anew",
				name, typeName(typeErr.Found), aside))
		}
	}
	return nil, note(), fmt.Errorf("%s: %w: it kept changing under %d attempts", parent.join(name), errNoOutputs, maxAttempts)
}

// moveAside renames the entry name of dir, whatever it is, to the first
// free "name.invalid-N"; it returns "" if the entry is gone.
func moveAside(dir *Dir, name string) (string, error) {
	for i := 1; i <= maxNameTries; i++ {
		aside := name + ".invalid-" + strconv.Itoa(i)
		err := dir.Move(name, dir, aside)
		switch {
		case err == nil:
			return aside, nil
		case errors.Is(err, fs.ErrNotExist):
			return "", nil
		case !errors.Is(err, fs.ErrExist):
			return "", err
		}
	}
	return "", fmt.Errorf("%s: %w: no free name to move it aside", dir.join(name), errNoOutputs)
}

// keepFile copies the regular single-link file name of files into out,
// under the first free name, owned by o with the original's permissions.
func keepFile(files *Dir, name string, out *Dir, o Owner) (string, error) {
	src, err := files.OpenFile(name)
	if err != nil {
		return "", err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return "", err
	}
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := range maxNameTries {
		candidate := name
		if i > 0 {
			candidate = stem + "-" + strconv.Itoa(i) + ext
		}
		dst, err := out.CreateFile(candidate, st.Mode().Perm(), o)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := copyFile(dst, src); err != nil {
			// What stands at the name is the partial copy or, if a
			// sandbox swapped it meanwhile, something of its own tree.
			_ = out.Remove(candidate)
			return "", fmt.Errorf("copy %s to %s: %w", files.join(name), out.join(candidate), err)
		}
		return candidate, nil
	}
	return "", fmt.Errorf("no free name for %s in %s", name, out.path)
}

// copyFile copies src to dst (copy_file_range where the kernel can) and
// closes dst, synced: a kept file outlives the session it came from.
func copyFile(dst, src *os.File) error {
	_, err := io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// OpenOutput opens the file name of sharedFiles/outputs/ for the download
// route. Neither outputs/ nor name is followed if it is a symlink (a
// *TypeError, matching ErrSymlink); name must be a regular file with one
// link (else a *TypeError matching ErrNotRegular, or ErrLinked) and a
// single file name (else ErrInvalidName). A missing user, outputs/ or
// file is an fs.ErrNotExist error.
func OpenOutput(sharedFiles, name string) (*os.File, Info, error) {
	if err := checkName(name); err != nil {
		return nil, Info{}, err
	}
	shared, err := OpenDir(sharedFiles)
	if err != nil {
		return nil, Info{}, err
	}
	defer shared.Close()
	out, err := shared.OpenDir(outputsName)
	if err != nil {
		return nil, Info{}, err
	}
	defer out.Close()
	f, err := out.OpenFile(name)
	if err != nil {
		return nil, Info{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	return f, infoOf(name, fi), nil
}
