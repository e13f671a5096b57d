// See doc.go. The constructor takes over the process before the Go
// runtime starts when argv[1] names a shim mode; the process then exits
// without ever returning to Go.
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "shim.h"

__attribute__((constructor)) static void sandboxd_shim(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return;
	if (strcmp(argv[1], "sandbox-init") == 0)
		shim_agent();
	if (strcmp(argv[1], "sandbox-bind") == 0)
		shim_bind(argc, argv);
}
