// probe makes the syscalls the seccomp tests name and prints, for each,
// "ok" or the errno it failed with.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long child(long pid) {
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	return pid;
}

static long probe(const char *name) {
	if (!strcmp(name, "clone3")) {
		struct clone_args ca = {.exit_signal = SIGCHLD};
		return child(syscall(SYS_clone3, &ca, sizeof(ca)));
	}
	if (!strcmp(name, "clone-newuser"))
		return child(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
	if (!strcmp(name, "unshare-newuser"))
		return syscall(SYS_unshare, CLONE_NEWUSER);
	if (!strcmp(name, "setns"))
		return syscall(SYS_setns, -1, 0);
	if (!strcmp(name, "add_key"))
		return syscall(SYS_add_key, "user", "shimtest", "x", 1, KEY_SPEC_PROCESS_KEYRING);
	if (!strcmp(name, "keyctl"))
		return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
	if (!strcmp(name, "personality"))
		return syscall(SYS_personality, READ_IMPLIES_EXEC);
	if (!strcmp(name, "userfaultfd"))
		return syscall(SYS_userfaultfd, UFFD_USER_MODE_ONLY);
	if (!strcmp(name, "name_to_handle_at")) {
		char buf[128] = {0};
		int mnt;
		return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", buf, &mnt, 0);
	}
	if (!strcmp(name, "mount"))
		return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
	if (!strcmp(name, "fsopen"))
		return syscall(SYS_fsopen, "tmpfs", 0);
	if (!strcmp(name, "open_tree"))
		return syscall(SYS_open_tree, AT_FDCWD, "/", 0);
	if (!strcmp(name, "bpf"))
		return syscall(SYS_bpf, 0, NULL, 0);
	if (!strcmp(name, "perf_event_open"))
		return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
	if (!strcmp(name, "kexec_load"))
		return syscall(SYS_kexec_load, 0, 0, NULL, 0);
	if (!strcmp(name, "init_module"))
		return syscall(SYS_init_module, NULL, 0, "");
	if (!strcmp(name, "open_by_handle_at"))
		return syscall(SYS_open_by_handle_at, -1, NULL, 0);
	if (!strcmp(name, "io_uring_setup"))
		return syscall(SYS_io_uring_setup, 1, NULL);
	if (!strcmp(name, "socket-alg"))
		return syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0);
	errno = EINVAL;
	return -1;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		errno = 0;
		long r = probe(argv[i]);
		if (r < 0)
			printf("%s %s\n", argv[i], strerrorname_np(errno));
		else
			printf("%s ok\n", argv[i]);
	}
	return 0;
}
