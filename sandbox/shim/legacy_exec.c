// The supervisor of the libcontainer executor, which libcontainer starts
// for each command as "<exe> sandbox-exec UID GID CWD -- ARGV". It goes
// when sandbox/ moves to the agent (Start); until then it keeps working
// exactly as before.
#define _GNU_SOURCE
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
#include <unistd.h>

#include "shim.h"

// status_fd is where the supervisor reports how the command ended.
#define STATUS_FD 3

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

int shim_legacy_exec(int argc, char **argv) {
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
			shim_signal_tree(SIGKILL);
			break;
		case SIGCHLD:
			break;
		default: // SIGTERM, SIGINT, SIGHUP: pass on to the command
			shim_signal_tree(info.si_signo);
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
		shim_signal_tree(SIGKILL);
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			break;
	}
	report(status);
	return 0;
}
