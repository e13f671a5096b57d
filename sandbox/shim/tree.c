// A process tree and its end: finding every descendant of the calling
// process through /proc, and the messages and fds every part shares.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

void shim_header_init(struct shim_header *h, uint16_t type) {
	h->magic = SHIM_WIRE_MAGIC;
	h->version = SHIM_PROTOCOL_VERSION;
	h->type = type;
}

void shim_send_reply(int fd, uint16_t type, uint32_t a, int32_t b) {
	struct shim_reply r = {.a = a, .b = b};
	shim_header_init(&r.h, type);
	// A peer that went away or stopped reading loses its reply.
	(void)send(fd, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL);
}

int shim_take_fds(struct msghdr *mh, int *fds, int max) {
	int n = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);
		for (size_t i = 0; i < count; i++, n++) {
			int fd;
			memcpy(&fd, data + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n] = fd;
			else
				close(fd);
		}
	}
	return n;
}

void shim_close_fds(const int *fds, int n) {
	for (int i = 0; i < n; i++)
		close(fds[i]);
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

// Being the child subreaper, the caller keeps every process its command
// started, setsid or double-forked ones included, as a descendant until it
// reaps it.
size_t shim_signal_tree(int sig) {
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

void shim_kill_tree(void) {
	for (;;) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p > 0)
			continue;
		// Without a child left, nothing of the tree is left: orphans
		// are reparented to the subreaper before their parent is
		// reaped. This spares the /proc walk for most commands.
		if (p < 0 && errno != EINTR)
			return;
		shim_signal_tree(SIGKILL);
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			return;
	}
}
