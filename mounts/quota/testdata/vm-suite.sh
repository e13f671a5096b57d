#!/bin/bash
# The quota package's tests in the VM of `make vmtest` (Debian's 6.1 kernel
# has project quotas; the development kernel does not). Run as root in the
# guest, as packaging/vm/run.sh runs a suite, with the host share at /host
# holding quota-vm.tar (made by vmtest.sh): the test binary and filesystem
# images made on the host (mkfs.xfs is not in the guest). Each check prints
# `ok NAME` or `FAIL NAME: why`; the last line is `N passed, M failed`.
set -u
export LC_ALL=C.UTF-8
H=${1:-/host}
W=/var/tmp/quota-vm
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

rm -rf "$W" && mkdir -p "$W" && tar -C "$W" -xf "$H/quota-vm.tar" || { echo "FAIL unpack"; echo "0 passed, 1 failed"; exit 1; }
# only: the groups to run (a regex over their names; vmtest.sh's
# QUOTA_VM_ONLY), all by default.
only=$(cat "$W/only" 2>/dev/null)
want() { grep -Eq -- "${only:-.}" <<<"$1"; }
modprobe loop 2>/dev/null
modprobe quota_v2 2>/dev/null
modprobe xfs 2>/dev/null

# gotest NAME DIR REGEX: the test binary's tests matching REGEX, with
# SANDBOXD_QUOTA_PROJECT_DIR=DIR (empty: unset); their output indented.
gotest() {
	local name=$1 dir=$2 run=$3 out rc
	want "$name" || return 0
	out=$(cd "$W" && SANDBOXD_QUOTA_PROJECT_DIR=$dir ./quota.test -test.count=1 -test.v -test.run "$run" 2>&1)
	rc=$?
	sed 's/^/  /' <<<"$out" | grep -E '^  (---|    |ok|FAIL|PASS|panic)' | grep -v '^  === '
	if [ $rc -eq 0 ] && ! grep -q -- '--- SKIP' <<<"$out"; then ok "$name"; else bad "$name" "exit $rc (or a test skipped)"; fi
}

# mountimg NAME OPTIONS: loop-mounts $W/NAME.img at $W/NAME.
mountimg() {
	mkdir -p "$W/$1" && mount -o "loop,$2" "$W/$1.img" "$W/$1"
}

echo "  # kernel $(uname -r), $(mke2fs -V 2>&1 | head -1)"
gotest detect-loop "" '^TestDetect$'
gotest loop "" '^TestLoop'
if ! want project-ext4; then
	:
elif mountimg ext4 prjquota; then
	gotest project-ext4 "$W/ext4" '^TestProject'
	umount "$W/ext4"
else
	bad project-ext4 "mount -o loop,prjquota failed"
fi
if [ -f "$W/xfs.img" ] && want project-xfs; then
	if mountimg xfs pquota; then
		gotest project-xfs "$W/xfs" '^TestProject'
		umount "$W/xfs"
	else
		bad project-xfs "mount -o loop,pquota failed"
	fi
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
