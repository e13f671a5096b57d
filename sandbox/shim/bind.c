// The binder: "<exe> sandbox-bind HOSTNAME TARGET..." enters a ready
// sandbox's mount and UTS namespaces (fds 3 and 4), names it HOSTNAME and
// attaches the detached mounts it was given (fds 5, 6, ...) at the TARGETs,
// in order, then exits. It is a process of its own because a mount
// namespace admits only a single-threaded process, which the daemon is
// not; it runs before any command of the sandbox did, and resolves each
// target refusing symlinks all the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

__attribute__((noreturn)) static void fail(const char *what, const char *arg) {
	fprintf(stderr, "sandboxd bind: %s %s: %s\n", what, arg, strerror(errno));
	_exit(1);
}

void shim_bind(int argc, char **argv) {
	if (argc < 3) {
		errno = EINVAL;
		fail("usage:", "sandbox-bind HOSTNAME TARGET...");
	}
	if (setns(SHIM_BIND_MNTNS_FD, CLONE_NEWNS) < 0)
		fail("enter mount namespace", "");
	if (setns(SHIM_BIND_UTSNS_FD, CLONE_NEWUTS) < 0)
		fail("enter UTS namespace", "");
	if (sethostname(argv[2], strlen(argv[2])) < 0)
		fail("set hostname", argv[2]);
	for (int i = 3; i < argc; i++) {
		int mnt = SHIM_BIND_MOUNTS_FD + (i - 3);
		struct open_how how = {
			.flags = O_PATH | O_CLOEXEC,
			.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		// Absolute: from the namespace's root, which setns made ours.
		int target = (int)syscall(SYS_openat2, AT_FDCWD, argv[i], &how, sizeof(how));
		if (target < 0)
			fail("open target", argv[i]);
		if (syscall(SYS_move_mount, mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			fail("attach mount at", argv[i]);
		close(target);
		close(mnt);
	}
	_exit(0);
}
