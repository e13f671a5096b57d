// See doc.go. Everything here runs before the Go runtime, in a process that
// exits without returning to it.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// status_fd is where the supervisor reports how the command ended.
#define STATUS_FD 3

// sandbox_init reaps every orphan the sandbox produces, forever. As PID 1 of
// the sandbox's pid namespace it receives no signal it has no handler for,
// so nothing inside can end it; the daemon ends it with SIGKILL.
__attribute__((noreturn)) static void sandbox_init(void) {
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	struct timespec tick = {.tv_sec = 5};
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		sigtimedwait(&set, NULL, &tick);
	}
}

struct proc {
	pid_t pid, ppid;
};

// read_procs lists (pid, ppid) of every live process in the pid namespace.
static struct proc *read_procs(size_t *n) {
	size_t cap = 256, len = 0;
	struct proc *ps = malloc(cap * sizeof(*ps));
	DIR *d = opendir("/proc");
	if (!ps || !d) {
		free(ps);
		if (d)
			closedir(d);
		*n = 0;
		return NULL;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		// The command name may hold spaces and parentheses; the fields
		// after it start at the last ')'.
		char *p = strrchr(buf, ')');
		char state;
		long ppid;
		if (!p || sscanf(p + 1, " %c %ld", &state, &ppid) != 2)
			continue;
		if (state == 'Z' || state == 'X')
			continue;
		if (len == cap) {
			cap *= 2;
			struct proc *grown = realloc(ps, cap * sizeof(*ps));
			if (!grown)
				break;
			ps = grown;
		}
		ps[len].pid = (pid_t)pid;
		ps[len].ppid = (pid_t)ppid;
		len++;
	}
	closedir(d);
	*n = len;
	return ps;
}

// signal_tree sends sig to every live descendant of this process and
// returns how many it found. Being the child subreaper, every process the
// command started, setsid or double-forked ones included, stays a
// descendant until it is reaped here.
static size_t signal_tree(int sig) {
	size_t n, found = 0;
	struct proc *ps = read_procs(&n);
	if (!ps)
		return 0;
	pid_t *queue = malloc((n + 1) * sizeof(pid_t));
	if (!queue) {
		free(ps);
		return 0;
	}
	size_t head = 0, tail = 0;
	queue[tail++] = getpid();
	while (head < tail) {
		pid_t parent = queue[head++];
		for (size_t i = 0; i < n; i++) {
			if (ps[i].ppid == parent && ps[i].pid != 0) {
				queue[tail++] = ps[i].pid;
				kill(ps[i].pid, sig);
				ps[i].pid = 0; // visited
				found++;
			}
		}
	}
	free(queue);
	free(ps);
	return found;
}

static int parse_id(const char *s, unsigned *out) {
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || *s == '\0' || v > 0x7fffffff)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static void report(int status) {
	char buf[64];
	int len;
	if (WIFSIGNALED(status))
		len = snprintf(buf, sizeof(buf), "signal %d\n", WTERMSIG(status));
	else
		len = snprintf(buf, sizeof(buf), "exit %d\n", WEXITSTATUS(status));
	if (write(STATUS_FD, buf, (size_t)len) < 0)
		_exit(125);
}

// sandbox_exec runs argv as uid:gid in cwd and supervises its process tree.
static int sandbox_exec(int argc, char **argv) {
	unsigned uid, gid;
	if (argc < 5 || parse_id(argv[0], &uid) || parse_id(argv[1], &gid) || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "sandboxd: usage: sandbox-exec UID GID CWD -- ARGV...\n");
		return 125;
	}
	const char *cwd = argv[2];
	char **cmd = argv + 4;
	fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("sandboxd: subreaper");
		return 125;
	}
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);

	// started tells the supervisor whether the child got as far as exec:
	// it is closed by a successful exec (O_CLOEXEC) or carries the errno
	// of a working directory that could not be entered.
	int started[2];
	if (pipe2(started, O_CLOEXEC) < 0) {
		perror("sandboxd: pipe");
		return 125;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("sandboxd: fork");
		return 125;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		// setuid from root to another uid clears every capability: the
		// command starts with none, and no_new_privs keeps it so.
		if (setgroups(0, NULL) || setgid(gid) || setuid(uid)) {
			perror("sandboxd: drop privileges");
			_exit(126);
		}
		// As the user, so that permissions are the user's.
		if (chdir(cwd) < 0) {
			int err = errno;
			if (write(started[1], &err, sizeof(err)) < 0)
				_exit(125);
			_exit(126);
		}
		execvp(cmd[0], cmd);
		int err = errno;
		fprintf(stderr, "sandboxd: %s: %s\n", cmd[0], strerror(err));
		_exit(err == ENOENT ? 127 : 126);
	}
	close(started[1]);
	int cwd_err = 0;
	char buf[32];
	int len;
	if (read(started[0], &cwd_err, sizeof(cwd_err)) == (ssize_t)sizeof(cwd_err))
		len = snprintf(buf, sizeof(buf), "cwd %d\n", cwd_err);
	else
		len = snprintf(buf, sizeof(buf), "pid %d\n", (int)child);
	close(started[0]);
	if (write(STATUS_FD, buf, (size_t)len) < 0)
		return 125;

	int status = 0, done = 0;
	while (!done) {
		siginfo_t info;
		if (sigwaitinfo(&set, &info) < 0)
			continue;
		switch (info.si_signo) {
		case SIGUSR1:
			signal_tree(SIGKILL);
			break;
		case SIGCHLD:
			break;
		default: // SIGTERM, SIGINT, SIGHUP: pass on to the command
			signal_tree(info.si_signo);
			break;
		}
		int st;
		pid_t p;
		while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
			if (p == child) {
				status = st;
				done = 1;
			}
		}
	}
	// The command is over: nothing it started may outlive it.
	for (;;) {
		signal_tree(SIGKILL);
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			break;
	}
	report(status);
	return 0;
}

__attribute__((constructor)) static void sandboxd_shim(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return;
	if (strcmp(argv[1], "sandbox-init") == 0)
		sandbox_init();
	if (strcmp(argv[1], "sandbox-exec") == 0)
		_exit(sandbox_exec(argc - 2, argv + 2));
}
