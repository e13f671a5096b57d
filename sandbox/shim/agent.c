// The sandbox's PID 1: it reaps orphans and forks a supervisor for each
// command the daemon asks for. It never blocks on a connection, never
// exits for anything a peer or a command does, and runs no code a request
// could choose: it parses one fixed-size record per connection.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

__attribute__((noreturn)) static void die(const char *what) {
	fprintf(stderr, "sandboxd agent: %s: %s\n", what, strerror(errno));
	_exit(125);
}

// ensure_stdio opens /dev/null on any of fds 0-2 that is closed, so that
// no descriptor received later lands there.
static void ensure_stdio(void) {
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/null", O_RDWR) != fd)
			die("open /dev/null");
	}
}

// install_seccomp reads the programs at SHIM_SECCOMP_FD, if that is open,
// installs the base ones on this process and keeps the layer. It fails
// closed: a file it cannot use ends the sandbox.
static void install_seccomp(struct shim_layer *layer) {
	layer->n = 0;
	struct stat st;
	if (fstat(SHIM_SECCOMP_FD, &st) < 0) {
		if (errno == EBADF)
			return;
		die("seccomp file");
	}
	struct shim_seccomp_header h;
	uint32_t lens[SHIM_MAX_SECCOMP_PROGRAMS];
	if (pread(SHIM_SECCOMP_FD, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		die("read seccomp file");
	size_t n = (size_t)h.nbase + h.nlayer, insns = 0;
	if (h.magic != SHIM_SECCOMP_MAGIC || h.version != SHIM_PROTOCOL_VERSION || h.nbase == 0 ||
	    h.nbase > SHIM_MAX_SECCOMP_PROGRAMS || h.nlayer > SHIM_MAX_SECCOMP_PROGRAMS || n > SHIM_MAX_SECCOMP_PROGRAMS ||
	    pread(SHIM_SECCOMP_FD, lens, n * sizeof(uint32_t), sizeof(h)) != (ssize_t)(n * sizeof(uint32_t)))
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (lens[i] == 0 || lens[i] > SHIM_MAX_SECCOMP_INSNS)
			goto bad;
		insns += lens[i];
	}
	off_t start = (off_t)(sizeof(h) + n * sizeof(uint32_t));
	size_t size = insns * sizeof(struct sock_filter);
	if (st.st_size != start + (off_t)size)
		goto bad;
	struct sock_filter *prog = malloc(size);
	if (!prog || pread(SHIM_SECCOMP_FD, prog, size, start) != (ssize_t)size)
		die("read seccomp programs");
	// libcontainer sets it already; a filter needs it without
	// CAP_SYS_ADMIN.
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs");
	for (size_t i = 0; i < n; i++) {
		struct sock_fprog p = {.len = (unsigned short)lens[i], .filter = prog};
		prog += lens[i];
		if (i >= h.nbase)
			layer->progs[layer->n++] = p;
		else if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p) < 0)
			die("install seccomp filter");
	}
	close(SHIM_SECCOMP_FD);
	return;
bad:
	errno = EINVAL;
	die("seccomp file");
}

static void check_listener(void) {
	int type = 0, listening = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(listening);
	if (getsockopt(SHIM_LISTENER_FD, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
	    getsockopt(SHIM_LISTENER_FD, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) < 0)
		die("listener");
	if (type != SOCK_SEQPACKET || !listening) {
		errno = EINVAL;
		die("listener is not a listening SOCK_SEQPACKET socket");
	}
	if (fcntl(SHIM_LISTENER_FD, F_SETFL, O_NONBLOCK) < 0 || fcntl(SHIM_LISTENER_FD, F_SETFD, FD_CLOEXEC) < 0)
		die("listener");
}

static struct shim_layer layer;

// spawn forks the supervisor for conn, into cgroup when that is not -1,
// which then joins the njoin cgroup v1 files of join.
static void spawn(int conn, int cgroup, const int *join, int njoin) {
	pid_t self = getpid(), pid;
	int migrate = -1;
	if (cgroup >= 0) {
		struct clone_args ca = {
			.flags = CLONE_INTO_CGROUP,
			.exit_signal = SIGCHLD,
			.cgroup = (uint64_t)cgroup,
		};
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
		// Without clone3 or CLONE_INTO_CGROUP (an older kernel, an
		// outer seccomp filter), the supervisor moves itself.
		if (pid < 0 && (errno == ENOSYS || errno == EPERM || errno == E2BIG || errno == EINVAL)) {
			pid = fork();
			migrate = cgroup;
		}
	} else {
		pid = fork();
	}
	if (pid < 0) {
		shim_send_reply(conn, SHIM_MSG_FAILED, errno == EAGAIN ? SHIM_STAGE_PIDS_LIMIT : SHIM_STAGE_FORK, errno);
		return;
	}
	if (pid == 0)
		shim_supervise(conn, migrate, join, njoin, &layer, self);
}

enum { SERVED, AGAIN };

// serve reads the spawn record of conn, if it arrived, and acts on it.
static int serve(int conn) {
	union {
		struct shim_spawn s;
		unsigned char b[SHIM_SPAWN_LEN + 1];
	} m;
	// Room for one fd more than a spawn may carry, so that too many
	// are seen rather than cut off.
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE((SHIM_MAX_JOIN + 2) * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = m.b, .iov_len = sizeof(m.b)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
	ssize_t n = recvmsg(conn, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return AGAIN;
	enum { MAX_FDS = SHIM_MAX_JOIN + 1 };
	int fds[MAX_FDS];
	int nfds = n < 0 ? 0 : shim_take_fds(&mh, fds, MAX_FDS);
	if (n > 0) {
		const struct shim_spawn *s = &m.s;
		int whole = n == SHIM_SPAWN_LEN;
		int cgroup = (whole && (s->flags & SHIM_SPAWN_CGROUP)) ? 1 : 0;
		uint32_t njoin = whole ? s->njoin : 0;
		if (n >= SHIM_HEADER_LEN && s->h.magic == SHIM_WIRE_MAGIC && s->h.version != SHIM_PROTOCOL_VERSION)
			shim_send_reply(conn, SHIM_MSG_FAILED, SHIM_STAGE_VERSION, SHIM_PROTOCOL_VERSION);
		else if (!whole || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || s->h.magic != SHIM_WIRE_MAGIC ||
			 s->h.type != SHIM_MSG_SPAWN || (s->flags & ~(uint32_t)SHIM_SPAWN_CGROUP) ||
			 njoin > SHIM_MAX_JOIN || nfds != cgroup + (int)njoin)
			shim_send_reply(conn, SHIM_MSG_FAILED, SHIM_STAGE_PROTOCOL, 0);
		else
			spawn(conn, cgroup ? fds[0] : -1, fds + cgroup, (int)njoin);
	}
	shim_close_fds(fds, nfds < MAX_FDS ? nfds : MAX_FDS);
	close(conn);
	return SERVED;
}

static int pending[SHIM_MAX_PENDING];
static int npending;

static void drop_pending(int i) {
	close(pending[i]);
	memmove(&pending[i], &pending[i + 1], (size_t)(npending - i - 1) * sizeof(int));
	npending--;
}

static void accept_all(uid_t self) {
	for (int i = 0; i < SHIM_MAX_PENDING; i++) {
		int c = accept4(SHIM_LISTENER_FD, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && npending > 0) {
				drop_pending(0);
				continue;
			}
			return;
		}
		struct ucred cr;
		socklen_t l = sizeof(cr);
		// Only the daemon: root, or the agent's own uid where the
		// agent runs unprivileged (tests).
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || (cr.uid != 0 && cr.uid != self)) {
			close(c);
			continue;
		}
		// The daemon sends spawn with its connect: it is mostly here.
		if (serve(c) == SERVED)
			continue;
		if (npending == SHIM_MAX_PENDING)
			drop_pending(0);
		pending[npending++] = c;
	}
}

void shim_agent(void) {
	ensure_stdio();
	check_listener();
	install_seccomp(&layer);
	// As PID 1 it reaps orphans anyway; elsewhere (tests) it must too.
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask");
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");
	uid_t self = geteuid();
	struct pollfd pfd[2 + SHIM_MAX_PENDING];
	for (;;) {
		pfd[0] = (struct pollfd){.fd = SHIM_LISTENER_FD, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
		int n = npending;
		for (int i = 0; i < n; i++)
			pfd[2 + i] = (struct pollfd){.fd = pending[i], .events = POLLIN};
		if (poll(pfd, (nfds_t)(2 + n), -1) < 0)
			continue;
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
		}
		// Backwards, so that dropping one keeps the indexes of those
		// still to visit.
		for (int i = n - 1; i >= 0; i--) {
			if (pfd[2 + i].revents && serve(pending[i]) == SERVED) {
				memmove(&pending[i], &pending[i + 1], (size_t)(npending - i - 1) * sizeof(int));
				npending--;
			}
		}
		if (pfd[0].revents)
			accept_all(self);
	}
}
