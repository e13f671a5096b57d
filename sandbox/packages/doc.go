// Package packages owns the package policy of sessions: the allow-list
// (allowed_packages.txt), the local wheel cache (package_cache/) and its
// index, the filtered view of the cache that sessions install from, and
// the planning of installs (allow-list check, dependency closure, the
// hash-locked pip command to run in the sandbox). It runs nothing inside
// sandboxes itself.
//
// On disk, under the state directory:
//
//	allowed_packages.txt          one PEP 440 requirement per line
//	package_cache/index.json      name, version, file, sha256, size,
//	                              Requires-Dist, Requires-Python per wheel
//	package_cache/wheels/         the wheels (0444), as indexed
//	package_cache/allowed/        hard links to the verified wheels the
//	                              list allows, and a copy of the list:
//	                              bound read-only at /opt/wheels
//	package_cache/.lock           flock of writers (daemon and CLI)
//
// The cache holds wheels only: a source distribution would have to be
// built, with its build dependencies and arbitrary code, either as root
// on the host or offline in a sandbox; instead a connected host builds
// wheels (Fetch runs pip wheel) and the offline host adds those.
//
// Dependencies: a dependency of an allowed package is satisfied by what
// the environment already has (the base env's Debian packages, or the
// session's own installs), whatever the list says; otherwise it must
// itself be allowed and cached, or the install is refused naming it.
package packages
