"""A real sandboxd for the tests: started per test module, torn down after.

The daemon is ``$SANDBOXD_BIN`` (default ``<repo>/bin/sandboxd``) with a
temporary state directory and socket and a cgroup parent unique to this test
process and module (``/sandboxd-pytest-<pid>-<n>``). Teardown deletes every
session through the API, stops the daemon with SIGTERM (SIGKILL only if it
does not exit), kills whatever is left in that cgroup parent (it is ours
alone), removes the parent from every cgroup hierarchy under /sys/fs/cgroup
(/sys/fs/cgroup/unified included), and removes the temporary directory once
no mount is left under it.

Tests are skipped (unittest.SkipTest) when not run as root or when the binary
is missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PYROOT = os.path.dirname(HERE)  # api/python
REPO = os.path.dirname(os.path.dirname(PYROOT))
if PYROOT not in sys.path:
    sys.path.insert(0, PYROOT)

import sandboxd  # noqa: E402

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CGROUP_FS = "/sys/fs/cgroup"
USER = "pytest"

_started = 0


def _pdeathsig() -> None:
    """In the child: die with the test process (PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def cgroup_roots() -> List[str]:
    """Every cgroup hierarchy's mount: /sys/fs/cgroup on a pure v2 host, else
    each directory under it (cpu, memory, …, systemd, unified)."""
    if os.path.exists(os.path.join(CGROUP_FS, "cgroup.controllers")):
        return [CGROUP_FS]
    roots: List[str] = []
    try:
        names = sorted(os.listdir(CGROUP_FS))
    except OSError:
        return roots
    for name in names:
        p = os.path.realpath(os.path.join(CGROUP_FS, name))
        if os.path.isdir(p) and p not in roots:
            roots.append(p)
    return roots


def new_id(prefix: str = "t") -> str:
    return prefix + uuid.uuid4().hex[:12]


class Daemon:
    """One sandboxd process and everything it was given."""

    def __init__(self) -> None:
        global _started
        if os.geteuid() != 0:
            raise unittest.SkipTest("sandboxd tests need root (namespaces, cgroups, mounts)")
        self.binary = os.environ.get("SANDBOXD_BIN") or os.path.join(REPO, "bin", "sandboxd")
        if not os.access(self.binary, os.X_OK):
            raise unittest.SkipTest("no sandboxd binary at %s (run `make build` or set SANDBOXD_BIN)" % self.binary)
        _started += 1
        self.dir = tempfile.mkdtemp(prefix="sandboxd-pytest-")
        self.state = os.path.join(self.dir, "state")
        self.socket = os.path.join(self.dir, "run", "sandboxd.sock")
        self.parent = "/sandboxd-pytest-%d-%d" % (os.getpid(), _started)
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc: Optional[subprocess.Popen] = None
        self.client = sandboxd.Client(self.socket, timeout=60)

    # -- start ------------------------------------------------------------

    def start(self) -> "Daemon":
        try:
            self._start()
        except BaseException:
            errs = self.stop()
            if errs:
                sys.stderr.write("cleanup after a failed start: %s\n" % "; ".join(errs))
            raise
        return self

    def _start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--state-dir", self.state, "--socket", self.socket, "--cgroup-parent", self.parent],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_pdeathsig,
                close_fds=True,
            )
        probe = sandboxd.Client(self.socket, timeout=2)
        deadline = time.monotonic() + START_TIMEOUT
        last: Optional[BaseException] = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("sandboxd exited (%s) while starting; log:\n%s" % (self.proc.returncode, self.log()))
            try:
                probe.info()
                return
            except (OSError, sandboxd.SandboxdError) as e:
                last = e
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "sandboxd did not answer GET /v1 within %ds (last: %s); log:\n%s" % (START_TIMEOUT, last, self.log())
                )
            time.sleep(0.05)

    def log(self, tail: int = 60) -> str:
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "".join(f.readlines()[-tail:])
        except OSError as e:
            return "(log unreadable: %s)" % e

    # -- stop -------------------------------------------------------------

    def stop(self) -> List[str]:
        """Tear everything down; returns what could not be cleaned."""
        errs: List[str] = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                for s in self.client.list_sessions():
                    try:
                        self.client.delete_session(s.id)
                    except sandboxd.NotFound:
                        pass
                    except Exception as e:  # keep cleaning
                        errs.append("delete session %s: %s" % (s.id, e))
            except Exception as e:
                errs.append("list sessions: %s" % e)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                errs.append("sandboxd did not exit within %ds of SIGTERM; killed" % STOP_TIMEOUT)
                self.proc.kill()
                self.proc.wait()
        for pid in self._pids_under_parent():
            try:
                os.kill(pid, signal.SIGKILL)
                errs.append("killed leftover process %d in %s" % (pid, self.parent))
            except ProcessLookupError:
                pass
        for root in cgroup_roots():
            errs.extend(self._remove_cgroup_tree(os.path.join(root, self.parent.lstrip("/"))))
        # The users' disks (quota loop mode) stay mounted when the daemon
        # stops, for the next one: the daemon's, to detach.
        disks = os.path.join(os.path.realpath(self.state), "workspaces") + "/"
        for mp in sorted(self._mounts_under(self.dir), key=len, reverse=True):
            if mp.startswith(disks) and "/disk" in mp[len(disks):]:
                errs.extend(self._detach(mp))
        mounts = self._mounts_under(self.dir)
        if mounts:
            errs.append("mounts left under %s, not removed: %s" % (self.dir, ", ".join(mounts)))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return errs

    def _cgroup_dirs(self) -> List[str]:
        dirs: List[str] = []
        for root in cgroup_roots():
            top = os.path.join(root, self.parent.lstrip("/"))
            for d, _, _ in os.walk(top):
                dirs.append(d)
        return dirs

    def _pids_under_parent(self) -> List[int]:
        pids = set()
        for d in self._cgroup_dirs():
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids.update(int(x) for x in f.read().split())
            except (OSError, ValueError):
                pass
        return sorted(pids)

    @staticmethod
    def _remove_cgroup_tree(top: str) -> List[str]:
        if not os.path.isdir(top):
            return []
        dirs = [d for d, _, _ in os.walk(top)]
        errs: List[str] = []
        for d in reversed(dirs):  # deepest first
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        errs.append("rmdir %s: %s" % (d, e))
                        break
                    time.sleep(0.1)  # killed processes may still be exiting
            else:
                errs.append("rmdir %s: still busy" % d)
        return errs

    @staticmethod
    def _detach(mp: str) -> List[str]:
        """umount2(mp, MNT_DETACH); a mount already gone with its parent is
        no error."""
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(mp.encode(), 2) != 0:
            e = ctypes.get_errno()
            if e not in (errno.EINVAL, errno.ENOENT):
                return ["unmount %s: %s" % (mp, os.strerror(e))]
        return []

    @staticmethod
    def _mounts_under(path: str) -> List[str]:
        found = []
        prefix = os.path.realpath(path).rstrip("/") + "/"
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    mp = line.split()[4].encode().decode("unicode_escape")
                    if (mp + "/").startswith(prefix):
                        found.append(mp)
        except OSError:
            pass
        return found


def start_daemon() -> Daemon:
    """setUpModule's half: a running daemon (or SkipTest)."""
    return Daemon().start()


def stop_daemon(d: Optional[Daemon]) -> None:
    """tearDownModule's half: fails the run if anything was left behind."""
    if d is None:
        return
    errs = d.stop()
    if errs:
        raise RuntimeError("sandboxd teardown: " + "; ".join(errs))


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    """Poll predicate until it returns something truthy; return that (or the
    last falsy value after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
