// Package quota owns the kernel mechanisms that cap what a user's sessions
// can write on the host: a per-user byte budget U, of which each live
// session reserves S bytes with at most F files, shared_files getting the
// rest. Both limits are hard at write time (ENOSPC or EDQUOT inside the
// sandbox), inodes included, and usage is read from the mechanism in O(1)
// (statfs, quotactl), never from a walk of the tree. A reservation that
// does not fit is refused with ErrNoRoom.
//
// It owns, in each user's directory (the daemon's quota.json and
// session.json stay outside disk/, on the state filesystem, so that a full
// disk never keeps the daemon from writing them and no sandbox reaches
// them):
//
//	disk.img                        loop mode: the user's ext4 image
//	projects.json                   project mode: the user's project ids and reservations
//	disk/                           the user's disk: disk.img's mount (loop), a directory (other modes)
//	  .reserve                      loop mode: fallocated ballast, the image's space beyond U
//	  images/<sid>.img              loop mode: a session's ext4 image, S bytes, fallocated
//	  sessions/<sid>/               a session's tree: its image's mount (loop), a project's directory
//	    files/ logs/ venv/{upper,work}/
//	  shared_files/                 the user's shared files
//
// and, in Config.Dir, next-project-id (project mode). U includes a 1 MiB
// allowance for the disk's own directories, so n sessions of U/n fit.
//
// # Modes
//
// Detect tries each on the state directory, best first; Report.String is
// the line sandboxd doctor prints, and Report.Err is non-nil (a failed
// optional check: the daemon runs, limits are not enforced) in none mode.
//
//   - project: the state filesystem enforces project quotas (ext4 mounted
//     with prjquota, XFS with pquota; quotactl_fd, Linux 5.14). One
//     project per session (S bytes, F files) and one for shared_files (U
//     less the reservations), on directories carrying the id with the
//     inherit flag. Doctor: "project quotas on ext4 at /var/lib/sandboxd:
//     per-session and shared limits enforced". Sandboxes must then be kept
//     from changing their files' project ids (see projectBackend).
//   - loop: no project quotas; loop devices and ext4 work. The user's disk
//     is an image holding U, each session's tree an image of exactly S
//     bytes inside it, fully allocated when reserved, with F inodes;
//     every limit is the ENOSPC of a full filesystem, for root as for the
//     sandbox (no blocks reserved for root). Loop devices are bound with
//     LOOP_CONFIGURE, autoclear and direct I/O, and images mounted with
//     the new mount API. Doctor: "loop-mounted ext4 images under
//     /var/lib/sandboxd (direct I/O; no project quotas: ...): limits
//     enforced", adding "budgets cannot grow online without
//     CAP_SYS_RESOURCE" when the process lacks it (ext4's online resize).
//   - none: neither works. The tree is laid out as in project mode, nothing
//     is enforced and Usage says so (Enforced false). Doctor: "NOT
//     ENFORCED: no project quotas (...) and no loop-mounted images (...)".
//
// A state directory keeps the mode its users were laid out with: loop
// mode refuses a user laid out by the directory modes and the other way
// round (ErrForeign), rather than hide or split the user's files.
//
// Every directory the package acts on is opened without following
// symlinks and checked for its owner; filesystems are mounted onto the
// descriptor just verified (fsmount, move_mount) and unmounted through
// their own descriptor, never through a path looked up again.
package quota
