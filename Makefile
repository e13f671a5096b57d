# sandboxd — `make run` starts the daemon on the embedded default (state
# under ./var, no config file); `make test` runs every test (the privileged
# ones too when root).

GO      ?= go
# Debian's interpreter: the one whose python3-* packages (FastAPI for the
# reference chat backend) the Python tests use.
PYTHON  ?= /usr/bin/python3
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# The development daemon keeps everything under the checkout, and its own
# cgroup parent so that it never meets an installed daemon's sessions.
DEV_STATE  ?= $(CURDIR)/var/state
DEV_SOCKET ?= $(CURDIR)/var/run/sandboxd.sock
DEV_CGROUP ?= /sandboxd-dev

# Debian versions must start with a digit: 0.1.0+git<commits>.<hash>.
DEB_VERSION ?= 0.1.0+git$(shell git rev-list --count HEAD 2>/dev/null || echo 0).$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

.PHONY: all build run test test-python bench bench-go vet clean deb verify-units

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/sandboxd ./cmd/sandboxd
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/sandboxctl ./cmd/sandboxctl

run: build
	exec ./bin/sandboxd --state-dir $(DEV_STATE) --socket $(DEV_SOCKET) --cgroup-parent $(DEV_CGROUP)

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# One package at a time: the CPU-limit test measures a share of the machine.
test: vet
	@[ "$$(id -u)" = 0 ] || echo "NOTE: not root: tests that need namespaces, cgroups and mounts are skipped"
	$(GO) test -count=1 -p 1 ./...
	$(MAKE) test-python

# The Python client and Mini-Agent adapters (api/python) against a real daemon.
test-python: build
	$(PYTHON) -m unittest discover -s api/python/tests -v

# `make bench`: sandboxd side by side with runc (the version go.mod pins,
# built once into .cache/runc) and bubblewrap, as a table of ratios; see
# packaging/bench; then the in-process benchmarks (bench-go). Needs root.
# BENCH_FLAGS passes flags (e.g. -runs 40).
RUNC_VERSION = $(shell $(GO) list -m -f '{{.Version}}' github.com/opencontainers/runc)
RUNC_BIN     = .cache/runc/runc-$(RUNC_VERSION)

bench: build
	@[ -x "$(RUNC_BIN)" ] || GO=$(GO) packaging/bench/build-runc.sh $(RUNC_VERSION) $(RUNC_BIN)
	$(GO) run ./packaging/bench --sandboxd bin/sandboxd --sandboxctl bin/sandboxctl --runc $(RUNC_BIN) $(BENCH_FLAGS)
	$(MAKE) bench-go

# The in-process benchmarks: a session's create, exec and delete
# (SANDBOXD_BENCH_CPUS=2 gives the exec's session 2 CPUs), the files API,
# the agent and the exec cgroups.
# BenchmarkDisk writes: a few rounds of it, not 50.
bench-go:
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkDisk$$' -benchtime 50x ./sandbox/ ./sandbox/shim/ ./cgroup/
	$(GO) test -run '^$$' -bench '^BenchmarkDisk$$' -benchtime 5x ./sandbox/

# The Debian package: dist/sandboxd_$(DEB_VERSION)_amd64.deb.
deb: verify-units
	$(MAKE) build VERSION=$(DEB_VERSION)
	packaging/build-deb.sh $(DEB_VERSION)

verify-units:
	packaging/verify-units.sh

clean:
	rm -rf bin dist

# `make vmtest`: the Debian package on cgroup v2 under a real systemd (254,
# from bookworm-backports), in a Debian bookworm VM booted by qemu (TCG, or
# KVM where kvm_intel/kvm_amd is loaded); the exit status is the in-VM
# suite's. The image is cached under .cache/vm. See packaging/vm/README.md.
VM_DEB ?= dist/sandboxd_$(DEB_VERSION)_amd64.deb

.PHONY: vmtest
vmtest: deb
	packaging/vm/run.sh $(VM_DEB)
