#!/usr/bin/env bash
# systemd-analyze verify on the shipped units. ExecStart is pointed at the
# freshly built binary (verify checks that it is executable); any warning
# fails the check, except systemd < 254 not knowing DelegateSubgroup=.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
[ -x "$top/bin/sandboxd" ] || make -C "$top" build >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for unit in "$top"/packaging/systemd/*; do
	sed "s|/usr/bin/sandboxd|$top/bin/sandboxd|" "$unit" > "$tmp/$(basename "$unit")"
done
out=$(systemd-analyze verify "$tmp"/sandboxd.service "$tmp"/sandboxd.socket 2>&1)
rc=$?
if [ "$(systemd-analyze --version | awk 'NR==1 {print $2}')" -lt 254 ]; then
	out=$(printf '%s\n' "$out" | grep -v "Unknown key 'DelegateSubgroup'" || true)
fi
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	printf 'systemd-analyze verify failed:\n%s\n' "$out" >&2
	exit 1
fi
echo "units verified: $(systemd-analyze --version | head -1)"
