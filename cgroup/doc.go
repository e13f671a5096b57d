// Package cgroup owns what the daemon itself does in the cgroup tree. It
// detects the host's layout (v1, hybrid or unified v2) and its hierarchies
// once, names the absolute parent under which every session's cgroup lives
// (parent/user_<id>/<session>), and, beneath a session, the cgroup of each
// command (<session>/<exec>): it creates one, places a process in it (an
// open directory for clone3's CLONE_INTO_CGROUP on v2), reads what the
// command used, kills its tree and removes it. For whole sessions it reads
// statistics, freezes and thaws them, and removes the per-user parents and
// whatever session a previous daemon left behind. On a systemd host it takes
// the cgroup a Delegate=yes unit was given.
//
// Each session's own cgroup is created, limited and destroyed by
// libcontainer (package sandbox); this package never sets a limit. It works
// through containerd/cgroups/v3, except on the path of every command: an
// exec's cgroup is made, joined, read and removed with the few system calls
// it needs (see Exec).
package cgroup
