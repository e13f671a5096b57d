// preload records that it was loaded, and with which effective uid: as an
// LD_PRELOAD or LD_AUDIT library, a library found through
// LD_LIBRARY_PATH, or a gconv module found through GCONV_PATH.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void loaded(void) {
	const char *dir = getenv("SHIMTEST_MARKERS");
	if (!dir)
		return;
	char path[4096], line[64];
	snprintf(path, sizeof(path), "%s/%d", dir, (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0666);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "euid=%d\n", (int)geteuid());
	(void)!write(fd, line, (size_t)n);
	close(fd);
}

// LD_AUDIT wants this to load the library.
unsigned int la_version(unsigned int version) { return version; }
