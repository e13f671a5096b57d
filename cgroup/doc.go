// Package cgroup owns sandboxd's place in the cgroup tree: it detects the
// host's cgroup mode (v1, hybrid or unified v2), names the absolute parent
// under which every session's cgroup lives (parent/user_<id>/<session>),
// reads per-session statistics, and removes the per-user parents and any
// session cgroup a previous daemon left behind.
//
// The session cgroups themselves are created, limited and destroyed by
// libcontainer (package sandbox); this package owns everything above them.
package cgroup
