// Package quota owns the kernel mechanisms that cap what a user's sessions
// can write on the host: a per-user byte budget U, of which each live
// session reserves S bytes with at most F files, the rest going to the
// user's shared_files. Both limits are hard at write time (ENOSPC/EDQUOT
// inside the sandbox) and usage is read from the mechanism in O(1), never
// from a walk of the tree. It owns, under each user's directory:
//
//	user_<id>/disk.img                  loop mode: the user's ext4 image
//	user_<id>/projects.json             project mode: the user's project ids
//	user_<id>/disk/                     the user's disk: the image's mount (loop) or a directory
//	  .reserve                          loop mode: fallocated ballast, holds the image's space beyond U
//	  images/<sid>.img                  loop mode: the session's ext4 image, S bytes, fallocated
//	  sessions/<sid>/                   the session's tree: the image's mount (loop) or a project's directory
//	    files/ logs/ venv/{upper,work}/
//	  shared_files/                     the user's shared files
//
// The daemon's own files (quota.json, session.json) stay outside disk/, on
// the state filesystem, so a full disk never stops the daemon from writing
// them and no sandbox can reach them.
//
// Modes, as Detect finds them and as Report.String prints them for
// sandboxd doctor:
//
//   - project: the state filesystem (ext4 mounted with prjquota, or XFS
//     with pquota) enforces project quotas. One project per session (S
//     bytes, F files) and one for shared_files (U minus the sessions'
//     reservations), set with quotactl on directories that carry the id
//     with the inherit flag. Doctor prints
//     "project quotas on <fs> at <dir>: per-session and shared limits enforced".
//   - loop: no project quotas, but loop devices and ext4 work. One ext4
//     image of U bytes per user, and inside it one fully allocated ext4
//     image of S bytes with F inodes per session. Doctor prints
//     "loop-mounted ext4 images under <dir> (no project quotas: <why>): limits enforced".
//   - none: neither works. Directories are made as in the other modes but
//     nothing is enforced and usage is unknown; Usage says so. Doctor
//     prints "NOT ENFORCED: <why project and loop modes fail>" as a
//     failed optional check.
//
// Every directory the package acts on is opened without following
// symlinks, and filesystems are mounted onto the descriptor just verified
// (fsmount and move_mount), never onto a path.
package quota
