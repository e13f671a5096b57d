#!/bin/bash
# Runs the quota package's tests in the VM of `make vmtest`
# (packaging/vm/run.sh with vm-suite.sh as the suite): the project-quota
# tests on ext4 (prjquota) and XFS (pquota), and the loop tests with
# CAP_SYS_RESOURCE (online growth). Root; installs xfsprogs on the host
# if missing. QUOTA_VM_ONLY (a regex over the groups: detect-loop, loop,
# project-ext4, project-xfs) runs only those. Exit status: the suite's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PATH=/usr/local/go/bin:$PATH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$repo" && go test -c -o "$work/quota.test" ./mounts/quota/)
# Filesystems with project quotas, made here: the guest has no mkfs.xfs.
truncate -s 512M "$work/ext4.img"
mkfs.ext4 -q -F -O quota,project -E quotatype=prjquota "$work/ext4.img"
if ! command -v mkfs.xfs >/dev/null; then
	apt-get install -y -q --no-install-recommends xfsprogs >&2 || true
fi
if command -v mkfs.xfs >/dev/null; then
	truncate -s 512M "$work/xfs.img"
	mkfs.xfs -q -f "$work/xfs.img"
fi
echo "${QUOTA_VM_ONLY:-}" >"$work/only"
tar -C "$work" -cf "$work/quota-vm.tar" only quota.test ext4.img $([ -f "$work/xfs.img" ] && echo xfs.img)
VM_SUITE=$here/vm-suite.sh "$repo/packaging/vm/run.sh" "$work/quota-vm.tar"
