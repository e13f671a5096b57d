// The supervisor of one command: forked from the agent (never exec'd, so
// no dynamic loader ever runs in it with a caller's input), it reads the
// command, starts it as the sandbox user with the caller's environment
// applied only in that child, reports, and kills the command's whole tree
// when it ends, when asked, or when the daemon hangs up.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

#define CONN SHIM_CONN_FD

struct request {
	uid_t uid;
	gid_t gid;
	// group, when not 0, is the command's one supplementary group.
	gid_t group;
	int hold;
	// keep_ids is set where the agent runs unprivileged as the
	// requested ids already (tests): no setgroups/setgid/setuid then.
	int keep_ids;
	const char *cwd;
	char **argv, **envp;
	// script is room for execvp's "/bin/sh FILE ARGS..." fallback.
	char **script;
	int fds[SHIM_EXEC_FDS];
	pid_t supervisor;
};

// failure is what the command's child leaves for the supervisor: the
// child shares the supervisor's memory until it execs (vfork). It is not
// a local: the compiler, unaware of that sharing, folds a local's reads.
struct failure {
	volatile int stage, err;
};
static struct failure child_failure;

__attribute__((noreturn)) static void fail(uint32_t stage, int err) {
	shim_send_reply(CONN, SHIM_MSG_FAILED, stage, err);
	_exit(0);
}

// read_request reads and checks the exec record. Anything malformed is
// refused: the supervisor is privileged and parses nothing it has not
// bounded first.
static void read_request(struct request *r) {
	char *buf = malloc(SHIM_MAX_EXEC_BYTES + 1);
	if (!buf)
		fail(SHIM_STAGE_INTERNAL, ENOMEM);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE((SHIM_EXEC_FDS + 1) * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = SHIM_MAX_EXEC_BYTES + 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
	ssize_t n;
	do
		n = recvmsg(CONN, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		_exit(0); // the daemon hung up before asking for anything
	int nfds = shim_take_fds(&mh, r->fds, SHIM_EXEC_FDS);
	struct shim_exec e;
	if ((size_t)n < sizeof(e) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfds != SHIM_EXEC_FDS)
		goto bad;
	memcpy(&e, buf, sizeof(e));
	if (e.h.magic != SHIM_WIRE_MAGIC || e.h.version != SHIM_PROTOCOL_VERSION || e.h.type != SHIM_MSG_EXEC ||
	    e.flags & ~(uint32_t)SHIM_EXEC_HOLD || e.argc < 1 || e.argc > SHIM_MAX_ARGS ||
	    e.envc > SHIM_MAX_ENV || e.uid == 0 || e.uid > 0x7ffffffe || e.gid == 0 || e.gid > 0x7ffffffe ||
	    e.group > 0x7ffffffe)
		goto bad;
	// The strings: cwd, argv, env, each NUL-terminated, filling the
	// record exactly.
	char *p = buf + sizeof(e), *end = buf + n;
	size_t want = 1 + (size_t)e.argc + e.envc, count = 0;
	if (p == end || end[-1] != '\0')
		goto bad;
	for (char *q = p; q < end; q++)
		count += *q == '\0';
	if (count != want)
		goto bad;
	r->argv = calloc(e.argc + 1, sizeof(char *));
	r->envp = calloc(e.envc + 1, sizeof(char *));
	r->script = calloc(e.argc + 2, sizeof(char *));
	if (!r->argv || !r->envp || !r->script)
		fail(SHIM_STAGE_INTERNAL, ENOMEM);
	r->cwd = p;
	p += strlen(p) + 1;
	for (uint32_t i = 0; i < e.argc; i++, p += strlen(p) + 1)
		r->argv[i] = p;
	for (uint32_t i = 0; i < e.envc; i++, p += strlen(p) + 1)
		r->envp[i] = p;
	if (r->cwd[0] != '/' || strlen(r->cwd) > SHIM_MAX_CWD || r->argv[0][0] == '\0')
		goto bad;
	r->uid = e.uid;
	r->gid = e.gid;
	r->group = e.group;
	r->hold = (e.flags & SHIM_EXEC_HOLD) != 0;
	r->keep_ids = geteuid() != 0 && e.uid == getuid() && e.gid == getgid();
	return;
bad:
	shim_close_fds(r->fds, nfds < SHIM_EXEC_FDS ? nfds : SHIM_EXEC_FDS);
	fail(SHIM_STAGE_PROTOCOL, 0);
}

static const char *env_get(char *const envp[], const char *name) {
	size_t len = strlen(name);
	for (; *envp; envp++)
		if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
			return *envp + len + 1;
	return NULL;
}

// try_exec execs path; for a file the kernel cannot execute it runs the
// shell on it, as execvp does. It returns the errno when it returns.
static int try_exec(const struct request *r, const char *path) {
	execve(path, r->argv, r->envp);
	if (errno != ENOEXEC)
		return errno;
	int i = 0;
	r->script[0] = "/bin/sh";
	r->script[1] = (char *)path;
	for (i = 1; r->argv[i]; i++)
		r->script[i + 1] = r->argv[i];
	r->script[i + 1] = NULL;
	execve("/bin/sh", r->script, r->envp);
	return errno;
}

// exec_path has execvp's semantics, with PATH taken from the command's
// environment (the supervisor's own is empty).
static int exec_path(const struct request *r) {
	const char *file = r->argv[0];
	if (strchr(file, '/'))
		return try_exec(r, file);
	const char *path = env_get(r->envp, "PATH");
	if (!path)
		path = "/bin:/usr/bin"; // glibc's default
	size_t flen = strlen(file);
	char buf[4096];
	int eacces = 0;
	for (const char *p = path;; p++) {
		const char *z = strchrnul(p, ':');
		size_t dlen = (size_t)(z - p);
		if (dlen + flen + 2 <= sizeof(buf)) {
			// An empty element is the working directory.
			if (dlen) {
				memcpy(buf, p, dlen);
				buf[dlen++] = '/';
			}
			memcpy(buf + dlen, file, flen + 1);
			int err = try_exec(r, buf);
			switch (err) {
			case EACCES:
				eacces = 1;
				break;
			case ENOENT:
			case ENOTDIR:
			case ESTALE:
			case ENODEV:
			case ETIMEDOUT:
			case ENAMETOOLONG:
				break;
			default:
				return err;
			}
		}
		if (*z == '\0')
			break;
		p = z;
	}
	return eacces ? EACCES : ENOENT;
}

// child_fail records why the command's child could not start and ends it.
__attribute__((noreturn)) static void child_fail(struct failure *f, int stage, int err) {
	f->stage = stage;
	f->err = err;
	_exit(126);
}

// run_command is the command's child, between vfork and exec: it shares
// the supervisor's memory, so it writes nothing but *f and calls only
// what is safe there (raw id syscalls, no malloc, no locale).
__attribute__((noreturn)) static void run_command(const struct request *r, struct failure *f) {
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	// From root, setresuid to another uid clears every capability: the
	// command starts with none, and no_new_privs keeps it so.
	gid_t groups[1] = {r->group};
	if (!r->keep_ids && (syscall(SYS_setgroups, r->group ? 1 : 0, r->group ? groups : NULL) < 0 ||
			     syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0 ||
			     syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0))
		child_fail(f, SHIM_STAGE_SET_ID, errno);
	// After the id change, which clears it.
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != r->supervisor)
		_exit(126);
	// As the user, so that permissions are the user's.
	if (chdir(r->cwd) < 0)
		child_fail(f, SHIM_STAGE_CWD, errno);
	for (int i = 0; i < SHIM_EXEC_FDS; i++)
		if (dup2(r->fds[i], i) < 0)
			child_fail(f, SHIM_STAGE_INTERNAL, errno);
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(f, SHIM_STAGE_INTERNAL, errno);
	int err = exec_path(r);
	char msg[256];
	int len = snprintf(msg, sizeof(msg), "sandboxd: %s: %s\n", r->argv[0], strerrordesc_np(err));
	if (len > 0)
		(void)!write(2, msg, (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg) - 1);
	f->stage = SHIM_STAGE_EXEC;
	f->err = err;
	_exit(err == ENOENT ? 127 : 126);
}

static void send_exit(int status) {
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	struct shim_exit m = {
		.code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status),
		.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
		.user_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec,
		.sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec,
		.maxrss_kb = (uint64_t)ru.ru_maxrss,
	};
	shim_header_init(&m.h, SHIM_MSG_EXIT);
	(void)send(CONN, &m, sizeof(m), MSG_NOSIGNAL);
}

// control reads one message from the daemon: 0 to go on, -1 when the
// supervisor must end the command's tree and exit (hang-up, or a message
// it does not understand). want_go is set while held.
static int control(int want_go) {
	struct shim_header h;
	// MSG_TRUNC: n is the record's real length, so a longer one is seen.
	ssize_t n = recv(CONN, &h, sizeof(h), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n != (ssize_t)sizeof(h) || h.magic != SHIM_WIRE_MAGIC || h.version != SHIM_PROTOCOL_VERSION)
		return -1;
	switch (h.type) {
	case SHIM_MSG_GO:
		return want_go ? 1 : -1;
	case SHIM_MSG_KILL:
		if (want_go)
			return -1;
		shim_signal_tree(SIGKILL);
		return 0;
	case SHIM_MSG_TERM:
		if (want_go)
			return -1;
		shim_signal_tree(SIGTERM);
		return 0;
	}
	return -1;
}

// wait_go holds a supervisor until the daemon says go: it has moved it
// into its cgroups meanwhile.
static void wait_go(void) {
	shim_send_reply(CONN, SHIM_MSG_HELD, (uint32_t)getpid(), 0);
	for (;;) {
		struct pollfd p = {.fd = CONN, .events = POLLIN};
		if (poll(&p, 1, -1) < 0)
			continue;
		int c = control(1);
		if (c > 0)
			return;
		if (c < 0)
			_exit(0);
	}
}

void shim_supervise(int conn, int cgroup, const int *join, int njoin, const struct shim_layer *layer, pid_t agent) {
	if (cgroup >= 0) {
		int procs = openat(cgroup, "cgroup.procs", O_WRONLY | O_CLOEXEC);
		if (procs < 0 || write(procs, "0", 1) != 1) {
			shim_send_reply(conn, SHIM_MSG_FAILED, SHIM_STAGE_CGROUP, errno);
			_exit(0);
		}
		close(procs);
	}
	// Before anything else, so that all the supervisor and the command
	// do is accounted there. The files close with the other fds below.
	for (int i = 0; i < njoin; i++) {
		if (write(join[i], "0", 1) != 1) {
			shim_send_reply(conn, SHIM_MSG_FAILED, SHIM_STAGE_CGROUP, errno);
			_exit(0);
		}
	}
	// Keep the connection alone: the agent's listener, its other
	// connections and fds must not live on here.
	if (dup2(conn, CONN) < 0 || syscall(SYS_close_range, CONN + 1, ~0U, 0) < 0 ||
	    fcntl(CONN, F_SETFD, FD_CLOEXEC) < 0 || fcntl(CONN, F_SETFL, 0) < 0)
		fail(SHIM_STAGE_INTERNAL, errno);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	// The agent's death (tests: it is not PID 1 there) is a hang-up.
	if (sfd < 0 || prctl(PR_SET_PDEATHSIG, SIGHUP) < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		fail(SHIM_STAGE_INTERNAL, errno);
	if (getppid() != agent)
		_exit(0);
	for (int i = 0; i < layer->n; i++)
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &layer->progs[i]) < 0)
			fail(SHIM_STAGE_SECCOMP, errno);

	struct request r = {.supervisor = getpid()};
	read_request(&r);
	if (r.hold)
		wait_go();

	struct failure *f = &child_failure;
	f->stage = f->err = 0;
	pid_t child = vfork();
	if (child == 0)
		run_command(&r, f);
	int fork_err = errno;
	shim_close_fds(r.fds, SHIM_EXEC_FDS);
	if (child < 0)
		fail(fork_err == EAGAIN ? SHIM_STAGE_PIDS_LIMIT : SHIM_STAGE_FORK, fork_err);
	if (f->stage) {
		shim_kill_tree();
		fail((uint32_t)f->stage, f->err);
	}
	shim_send_reply(CONN, SHIM_MSG_STARTED, (uint32_t)child, 0);

	int status = 0, done = 0, hangup = 0;
	while (!done && !hangup) {
		struct pollfd p[2] = {{.fd = CONN, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				if (si.ssi_signo == SIGHUP)
					hangup = 1;
		}
		int st;
		pid_t w;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0)
			if (w == child) {
				status = st;
				done = 1;
			}
		if (p[0].revents && control(0) < 0)
			hangup = 1;
	}
	// The command is over, or nobody waits for it: nothing it started
	// may outlive it.
	shim_kill_tree();
	if (!hangup)
		send_exit(status);
	_exit(0);
}
