#!/usr/bin/env bash
# Builds runc at VERSION, the version of github.com/opencontainers/runc that
# go.mod pins (the libcontainer sandboxd itself is built on), into OUT: a
# throwaway module in a temporary directory requires it and `go build`s its
# main package. No build tags: this runc has no seccomp support, so its
# containers run without a filter (sandboxd's have one), which spares the
# peer that cost in the comparison.
#
# usage: build-runc.sh VERSION OUT
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 VERSION OUT" >&2
	exit 2
fi
version=$1
out=$(realpath -m "$2")
go=${GO:-go}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/go.mod" <<MOD
module runcbuild

go 1.24
MOD
cd "$work"
"$go" get "github.com/opencontainers/runc@$version" >&2
mkdir -p "$(dirname "$out")"
"$go" build -trimpath -o "$out.tmp" github.com/opencontainers/runc
mv "$out.tmp" "$out"
# sed reads to the end: head would leave runc a SIGPIPE, which pipefail makes a failure.
"$out" --version | sed -n 1p >&2
