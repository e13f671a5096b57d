// Declarations shared by the C files of the shim; see doc.go.
#ifndef SANDBOXD_SHIM_H
#define SANDBOXD_SHIM_H

#include <linux/filter.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "wire.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ || __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__,
	       "the wire format is native-endian");

struct shim_header {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
};
_Static_assert(sizeof(struct shim_header) == SHIM_HEADER_LEN, "header layout");

struct shim_spawn {
	struct shim_header h;
	uint32_t flags;
	// njoin counts the cgroup.procs fds after the cgroup directory's.
	uint32_t njoin;
};
_Static_assert(sizeof(struct shim_spawn) == SHIM_SPAWN_LEN, "spawn layout");

struct shim_exec {
	struct shim_header h;
	// group, when not 0, is the command's one supplementary group.
	uint32_t uid, gid, argc, envc, flags, group;
};
_Static_assert(sizeof(struct shim_exec) == SHIM_EXEC_FIXED_LEN, "exec layout");

struct shim_reply {
	struct shim_header h;
	uint32_t a;
	int32_t b;
};
_Static_assert(sizeof(struct shim_reply) == SHIM_REPLY_LEN, "reply layout");

struct shim_exit {
	struct shim_header h;
	int32_t code, signal;
	uint64_t user_us, sys_us, maxrss_kb;
};
_Static_assert(sizeof(struct shim_exit) == SHIM_EXIT_LEN, "exit layout");

struct shim_seccomp_header {
	uint32_t magic, version, nbase, nlayer;
};
_Static_assert(sizeof(struct shim_seccomp_header) == SHIM_SECCOMP_HEADER_LEN, "seccomp file layout");

// shim_header_init fills in this version's header.
void shim_header_init(struct shim_header *h, uint16_t type);

// shim_send_reply sends a held, started or failed reply; it never blocks
// and never raises SIGPIPE.
void shim_send_reply(int fd, uint16_t type, uint32_t a, int32_t b);

// shim_take_fds collects the descriptors of every SCM_RIGHTS message of
// mh into fds (at most max) and closes those beyond max; it returns how
// many it found in all.
int shim_take_fds(struct msghdr *mh, int *fds, int max);

// shim_close_fds closes the first n descriptors of fds.
void shim_close_fds(const int *fds, int n);

// shim_signal_tree sends sig to every live descendant of this process and
// returns how many it found.
size_t shim_signal_tree(int sig);

// shim_kill_tree kills every descendant of this process and reaps them
// all; the caller must be the child subreaper of its tree.
void shim_kill_tree(void);

// shim_agent is the sandbox's PID 1.
__attribute__((noreturn)) void shim_agent(void);

// shim_bind is the binder: "<exe> sandbox-bind HOSTNAME TARGET...".
__attribute__((noreturn)) void shim_bind(int argc, char **argv);

// shim_layer is the seccomp programs each supervisor adds before forking
// its command.
struct shim_layer {
	int n;
	struct sock_fprog progs[SHIM_MAX_SECCOMP_PROGRAMS];
};

// shim_supervise is a supervisor, forked from the agent for one
// connection. cgroup, when not -1, is a cgroup v2 directory the supervisor
// still has to move itself into; join are njoin cgroup v1 cgroup.procs
// files it writes itself into.
__attribute__((noreturn)) void shim_supervise(int conn, int cgroup, const int *join, int njoin,
					      const struct shim_layer *layer, pid_t agent);
#endif
