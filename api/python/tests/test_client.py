"""The client against a real daemon: sessions, typed errors, exec, streamed
exec, background processes, files, output downloads and packages."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import tempfile
import threading
import time
import unittest
import zipfile

import _fixture
from _fixture import USER, new_id, wait_for

import sandboxd

D = None  # the module's daemon


def setUpModule():
    global D
    D = _fixture.start_daemon()


def tearDownModule():
    _fixture.stop_daemon(D)


class SessionTestCase(unittest.TestCase):
    """Each test gets a fresh session, deleted afterwards."""

    def setUp(self):
        self.c = D.client
        self.sid = new_id("c")
        self.session = self.c.create_session(USER, self.sid)
        self.addCleanup(self._delete)

    def _delete(self):
        try:
            self.c.delete_session(self.sid)
        except sandboxd.NotFound:
            pass

    def no_process(self, name):
        """True once no process called name runs in the session."""
        return self.c.exec(self.sid, argv=["pgrep", "-x", name]).stdout == ""


class SessionsTest(SessionTestCase):
    def test_info(self):
        info = self.c.info()
        self.assertEqual(info.api_version, "v1")
        self.assertEqual(info.cgroup_parent, D.parent)
        self.assertGreaterEqual(info.sessions, 1)

    def test_get_and_list(self):
        s = self.c.get_session(self.sid)
        self.assertEqual((s.id, s.user_id, s.status, s.workspace), (self.sid, USER, "running", "/workspace"))
        self.assertIsNotNone(s.created_at)
        self.assertIn(self.sid, [x.id for x in self.c.list_sessions(USER)])
        self.assertNotIn(self.sid, [x.id for x in self.c.list_sessions("someone-else")])

    def test_generated_id_and_limits(self):
        s = self.c.create_session(USER, limits=sandboxd.Limits(memory_mb=256))
        try:
            self.assertTrue(s.id)
            self.assertEqual(s.limits.memory_mb, 256)
        finally:
            self.c.delete_session(s.id)

    def test_typed_errors(self):
        with self.assertRaises(sandboxd.NotFound) as cm:
            self.c.get_session(new_id("missing"))
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "not_found"))
        with self.assertRaises(sandboxd.InvalidArgument) as cm:
            self.c.create_session("../bad user")
        self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(sandboxd.AlreadyExists) as cm:
            self.c.create_session(USER, self.sid)
        self.assertEqual((cm.exception.status, cm.exception.code), (409, "already_exists"))
        with self.assertRaises(sandboxd.NotFound):
            self.c.exec(new_id("missing"), command="true")
        with self.assertRaises(sandboxd.NotFound):
            self.c.delete_session(new_id("missing"))
        # Values that need escaping stay one path segment.
        with self.assertRaises(sandboxd.NotFound):
            self.c.get_session("a/b?c=d")

    def test_thread_safe(self):
        results, errs = [], []

        def run(i):
            try:
                results.append(self.c.exec(self.sid, command="echo %d" % i).stdout)
            except Exception as e:  # pragma: no cover - reported below
                errs.append(e)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errs, [])
        self.assertEqual(sorted(results), ["%d\n" % i for i in range(5)])


class ExecTest(SessionTestCase):
    def test_echo(self):
        r = self.c.exec(self.sid, command="echo hello")
        self.assertEqual((r.exit_code, r.stdout, r.stderr, r.timed_out), (0, "hello\n", "", False))

    def test_stdout_stderr_exit_code(self):
        r = self.c.exec(self.sid, command="echo out; echo err >&2; exit 3")
        self.assertEqual((r.exit_code, r.stdout, r.stderr), (3, "out\n", "err\n"))

    def test_argv_cwd_env_stdin(self):
        r = self.c.exec(self.sid, argv=["sh", "-c", 'pwd; echo "$FOO"; cat'], cwd="/tmp", env={"FOO": "bar baz"},
                        stdin="from stdin")
        self.assertEqual(r.stdout, "/tmp\nbar baz\nfrom stdin")

    def test_timeout_kills_the_tree(self):
        t0 = time.monotonic()
        r = self.c.exec(self.sid, command="sleep 10 & sleep 10", timeout=1)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertTrue(r.timed_out)
        self.assertGreater(r.exit_code, 128)  # 128+n: the signal that ended it
        self.assertTrue(wait_for(lambda: self.no_process("sleep"), 5))


class ExecStreamTest(SessionTestCase):
    def test_stdout_before_exit(self):
        t0 = time.monotonic()
        seen = []
        with self.c.exec_stream(self.sid, command="echo first; sleep 2; echo second >&2; exit 4") as stream:
            for ev in stream:
                seen.append((ev.type, ev.data, time.monotonic() - t0))
        types = [t for t, _, _ in seen]
        self.assertEqual(types[0], "stdout")
        self.assertEqual(types[-1], "exit")
        self.assertEqual(seen[0][1], b"first\n")
        # The first chunk came while the command was still sleeping.
        self.assertLess(seen[0][2], seen[-1][2] - 1.0)
        self.assertEqual(b"".join(d for t, d, _ in seen if t == "stderr"), b"second\n")
        self.assertEqual(stream.result.exit_code, 4)
        self.assertEqual((stream.result.stdout, stream.result.stderr), ("", ""))

    def test_binary_output_round_trips(self):
        data = bytes(range(256)) * 4
        self.c.write_file(self.sid, "bin.dat", data)
        out = bytearray()
        for ev in self.c.exec_stream(self.sid, argv=["cat", "bin.dat"]):
            if ev.type == "stdout":
                out += ev.data
        self.assertEqual(bytes(out), data)
        # A lone invalid byte comes as data_b64 and decodes exactly.
        events = list(self.c.exec_stream(self.sid, command=r"printf '\377\376'"))
        self.assertEqual(b"".join(e.data for e in events if e.type == "stdout"), b"\xff\xfe")

    def test_large_output_beyond_the_exec_cap(self):
        data = os.urandom(3 << 20)  # more than exec's 1 MiB cap per stream
        self.c.write_file(self.sid, "big.dat", data)
        out = bytearray()
        with self.c.exec_stream(self.sid, argv=["cat", "big.dat"]) as stream:
            for ev in stream:
                if ev.type == "stdout":
                    out += ev.data
        self.assertEqual(len(out), len(data))
        self.assertEqual(bytes(out), data)
        self.assertEqual(stream.result.exit_code, 0)

    def test_refused_before_the_stream(self):
        with self.assertRaises(sandboxd.NotFound):
            self.c.exec_stream(new_id("missing"), command="true")
        with self.assertRaises(sandboxd.InvalidArgument):
            self.c.exec_stream(self.sid, command="true", cwd="/nonexistent-dir")

    def test_close_cancels_the_command(self):
        stream = self.c.exec_stream(self.sid, command="echo go; sleep 30")
        first = next(stream)
        self.assertEqual((first.type, first.data), ("stdout", b"go\n"))
        stream.close()
        self.assertTrue(wait_for(lambda: self.no_process("sleep"), 10), "sleep survived the closed stream")
        with self.assertRaises(StopIteration):
            next(stream)

    def test_timeout_in_stream(self):
        events = list(self.c.exec_stream(self.sid, command="echo x; sleep 10", timeout=1))
        self.assertEqual(events[-1].type, "exit")
        self.assertTrue(events[-1].result.timed_out)


class ProcessesTest(SessionTestCase):
    def test_lifecycle(self):
        p = self.c.start_process(self.sid, command='echo one; echo two >&2; sleep 30')
        self.assertTrue(p.id)
        self.assertGreater(p.pid, 0)
        self.assertEqual(p.status, "running")
        self.assertIsNotNone(p.started_at)
        self.assertIn(p.id, [x.id for x in self.c.list_processes(self.sid)])

        def lines():
            got.extend(self.c.process_output(self.sid, p.id).lines)
            return len(got) >= 2

        got = []
        self.assertTrue(wait_for(lines, 10), got)
        self.assertEqual(sorted(got), ["one", "two"])
        # Lines are read once.
        self.assertEqual(self.c.process_output(self.sid, p.id).lines, [])

        out = self.c.kill_process(self.sid, p.id, grace=2)
        self.assertEqual(out.status, "killed")
        self.assertEqual(out.exit_code, 128 + 15)
        with self.assertRaises(sandboxd.NotFound):
            self.c.process_output(self.sid, p.id)
        with self.assertRaises(sandboxd.NotFound):
            self.c.kill_process(self.sid, p.id)
        self.assertTrue(wait_for(lambda: self.no_process("sleep"), 5))

    def test_filter_and_exit(self):
        p = self.c.start_process(self.sid, argv=["sh", "-c", "for i in 1 2 3 4 5; do echo Line $i; done; exit 7"])

        def ended():
            return self.c.list_processes(self.sid)[0].status != "running"

        self.assertTrue(wait_for(ended, 10))
        out = self.c.process_output(self.sid, p.id, filter="Line [24]")
        self.assertEqual(out.lines, ["Line 2", "Line 4"])
        self.assertEqual((out.status, out.exit_code), ("exited", 7))
        self.assertEqual(self.c.process_output(self.sid, p.id).lines, [])
        with self.assertRaises(sandboxd.InvalidArgument):
            self.c.process_output(self.sid, p.id, filter="(unclosed")
        self.c.kill_process(self.sid, p.id)

    def test_too_many(self):
        started = []
        with self.assertRaises(sandboxd.QuotaExceeded) as cm:
            for _ in range(64):
                started.append(self.c.start_process(self.sid, argv=["sleep", "60"]))
        self.assertEqual(cm.exception.status, 429)
        self.assertGreater(len(started), 0)
        self.assertEqual(len(self.c.list_processes(self.sid)), len(started))
        for p in started:
            self.c.kill_process(self.sid, p.id, grace=0)
        self.assertEqual(self.c.list_processes(self.sid), [])

    def test_missing(self):
        with self.assertRaises(sandboxd.NotFound):
            self.c.process_output(self.sid, "nope")
        with self.assertRaises(sandboxd.NotFound):
            self.c.start_process(new_id("missing"), command="true")


class FilesTest(SessionTestCase):
    def test_round_trip(self):
        data = b"\x00\x01binary\xff" * 1000
        w = self.c.write_file(self.sid, "dir/sub/a.bin", data)
        self.assertEqual((w.path, w.size), ("dir/sub/a.bin", len(data)))
        self.assertEqual(len(w.sha256), 64)
        self.assertEqual(self.c.read_bytes(self.sid, "dir/sub/a.bin"), data)
        self.assertEqual(self.c.read_bytes(self.sid, "/workspace/dir/sub/a.bin", offset=3, length=6), data[3:9])
        self.assertEqual(self.c.read_bytes(self.sid, "dir/sub/a.bin", offset=len(data) - 4), data[-4:])
        # The sandbox sees the same bytes.
        r = self.c.exec(self.sid, command="sha256sum dir/sub/a.bin")
        self.assertEqual(r.stdout.split()[0], w.sha256)

        info = self.c.stat(self.sid, "dir/sub/a.bin")
        self.assertEqual((info.name, info.type, info.size), ("a.bin", "file", len(data)))
        listing = self.c.list_files(self.sid, "dir", recursive=True)
        self.assertEqual(sorted(e.path for e in listing.entries), ["dir/sub", "dir/sub/a.bin"])
        top = self.c.list_files(self.sid)
        self.assertIn("dir", [e.name for e in top.entries])

    def test_text_edit_mkdir_move_remove(self):
        self.c.write_file(self.sid, "t.txt", "a\nb\nc\nb\n")
        t = self.c.read_text(self.sid, "t.txt", line=2, limit=2)
        self.assertEqual([(ln.n, ln.text) for ln in t.lines], [(2, "b"), (3, "c")])
        self.assertEqual(t.total_lines, 4)
        with self.assertRaises(sandboxd.Conflict) as cm:
            self.c.edit_file(self.sid, "t.txt", "b", "B")
        self.assertIn("2 times", cm.exception.message)
        e = self.c.edit_file(self.sid, "t.txt", "b", "B", count=2)
        self.assertEqual(e.replacements, 2)
        self.c.edit_file(self.sid, "t.txt", "c", "C")
        self.assertEqual(self.c.read_bytes(self.sid, "t.txt"), b"a\nB\nC\nB\n")

        self.c.mkdir(self.sid, "x/y", parents=True)
        with self.assertRaises(sandboxd.AlreadyExists):
            self.c.mkdir(self.sid, "x/y")
        self.c.move(self.sid, "t.txt", "x/y/t2.txt")
        with self.assertRaises(sandboxd.NotFound):
            self.c.stat(self.sid, "t.txt")
        self.c.write_file(self.sid, "other.txt", "o")
        with self.assertRaises(sandboxd.AlreadyExists):
            self.c.move(self.sid, "other.txt", "x/y/t2.txt")
        self.c.move(self.sid, "other.txt", "x/y/t2.txt", overwrite=True)
        self.assertEqual(self.c.read_bytes(self.sid, "x/y/t2.txt"), b"o")
        with self.assertRaises(sandboxd.Conflict):
            self.c.remove(self.sid, "x")
        self.c.remove(self.sid, "x", recursive=True)
        with self.assertRaises(sandboxd.NotFound):
            self.c.stat(self.sid, "x")

    def test_file_like_bodies(self):
        self.c.write_file(self.sid, "bio.bin", io.BytesIO(b"from BytesIO"))
        self.assertEqual(self.c.read_bytes(self.sid, "bio.bin"), b"from BytesIO")
        with tempfile.TemporaryFile() as f:
            f.write(b"x" * 300000)
            f.seek(0)
            w = self.c.write_file(self.sid, "big.bin", f)
        self.assertEqual(w.size, 300000)
        self.c.write_file(self.sid, "text.txt", io.StringIO("héllo wörld"))
        self.assertEqual(self.c.read_bytes(self.sid, "text.txt"), "héllo wörld".encode())

        def gen():
            yield b"chunk1-"
            yield b"chunk2"

        self.c.write_file(self.sid, "gen.bin", gen())  # no length: chunked
        self.assertEqual(self.c.read_bytes(self.sid, "gen.bin"), b"chunk1-chunk2")

    def test_refused_upload_answers_with_the_daemons_error(self):
        # Issue 14.1: the daemon refuses an upload under a file before it
        # reads the body and closes; the client must read that answer
        # instead of failing with EPIPE while it still sends.
        self.c.write_file(self.sid, "plain", b"x")
        big = b"y" * (16 << 20)
        for mkdirs in (True, False, True):
            with self.assertRaises(sandboxd.InvalidArgument) as cm:
                self.c.write_file(self.sid, "plain/child.bin", big, mkdirs=mkdirs)
            self.assertIn("not a directory", cm.exception.message)
            self.assertEqual(cm.exception.status, 400)

    def test_refused_upload_stops_sending(self):
        # A body of unknown length (chunked) is not sent to its end once the
        # daemon has answered.
        self.c.write_file(self.sid, "plain", b"x")
        chunk = b"z" * (64 << 10)
        total = 1024  # 64 MiB if the client sent it all
        sent = []

        def body():
            for _ in range(total):
                sent.append(1)
                yield chunk

        with self.assertRaises(sandboxd.InvalidArgument) as cm:
            self.c.write_file(self.sid, "plain/child.bin", body())
        self.assertIn("not a directory", cm.exception.message)
        self.assertLess(len(sent), total, "the client kept sending after the daemon answered")

    def test_escaping_names(self):
        name = "we ird & name?#%.txt"
        self.c.write_file(self.sid, name, b"ok")
        self.assertEqual(self.c.read_bytes(self.sid, name), b"ok")
        self.assertIn(name, [e.name for e in self.c.list_files(self.sid).entries])

    def test_confined(self):
        with self.assertRaises((sandboxd.PermissionDenied, sandboxd.InvalidArgument)):
            self.c.read_bytes(self.sid, "../../../etc/passwd")
        with self.assertRaises(sandboxd.InvalidArgument):
            self.c.read_bytes(self.sid, "/etc/passwd")
        with self.assertRaises(sandboxd.NotFound):
            self.c.read_bytes(self.sid, "missing.txt")
        self.c.write_file(self.sid, "bin.dat", b"\xff\x00")
        with self.assertRaises(sandboxd.UnsupportedContent):
            self.c.read_text(self.sid, "bin.dat")

    def test_shared_root(self):
        self.c.write_file(self.sid, "data/note.txt", b"shared!", root="shared")
        self.assertEqual(self.c.read_bytes(self.sid, "/workspace/shared/data/note.txt"), b"shared!")
        r = self.c.exec(self.sid, command="cat /workspace/shared/data/note.txt")
        self.assertEqual(r.stdout, "shared!")
        self.c.remove(self.sid, "data/note.txt", root="shared")


def write_wheel(directory: str, name: str, version: str) -> str:
    """A tiny pure-Python wheel (PEP 427) installing module <name>_mod,
    whose VERSION is the wheel's version."""
    dist = name.replace("-", "_")
    info = "%s-%s.dist-info" % (dist, version)
    files = {
        dist + "_mod/__init__.py": "VERSION = %r\n" % version,
        info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
        info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: sandboxd-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, body in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (path, digest, len(body))
    files[info + "/RECORD"] = record + info + "/RECORD,,\n"
    path = os.path.join(directory, "%s-%s-py3-none-any.whl" % (dist, version))
    with zipfile.ZipFile(path, "w") as z:
        for name_, body in files.items():
            # A fixed time: the same wheel twice is the same bytes.
            z.writestr(zipfile.ZipInfo(name_, date_time=(2025, 6, 1, 12, 0, 0)), body)
    return path


class PackagesTest(SessionTestCase):
    """A wheel the test builds is added with `sandboxd packages add` beside
    the daemon; the client installs it offline, and a refused one raises
    PackageNotAllowed."""

    def setUp(self):
        super().setUp()
        allow = os.path.join(D.state, "allowed_packages.txt")
        with open(allow) as f:
            before = f.read()

        def restore():
            with open(allow, "w") as f:
                f.write(before)

        self.addCleanup(restore)
        with open(allow, "w") as f:
            f.write(before + "pytest-pkg\n")
        tmp = tempfile.mkdtemp(prefix="sandboxd-pytest-wheels-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", tmp], check=False))
        wheel = write_wheel(tmp, "pytest-pkg", "1.5")
        out = subprocess.run([D.binary, "--state-dir", D.state, "packages", "add", wheel],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        self.assertEqual(out.returncode, 0, out.stdout.decode(errors="replace"))

    def test_install_list_and_refuse(self):
        res = self.c.install_packages(self.sid, ["pytest-pkg>=1"])
        self.assertEqual([(p.name, p.version) for p in res.installed], [("pytest-pkg", "1.5")])
        self.assertIsNotNone(res.pip)
        self.assertEqual(res.pip.exit_code, 0)
        out = self.c.exec(self.sid, command="python3 -c 'import pytest_pkg_mod; print(pytest_pkg_mod.VERSION)'")
        self.assertEqual(out.stdout, "1.5\n", out.stderr)

        with self.assertRaises(sandboxd.PackageNotAllowed) as cm:
            self.c.install_packages(self.sid, ["pytest-refused"])
        self.assertEqual(cm.exception.status, 403)
        self.assertIn("pytest-refused is not on the package allow-list", cm.exception.message)
        with self.assertRaises(sandboxd.InvalidArgument):
            self.c.install_packages(self.sid, ["pytest-pkg=="])

        pkgs = self.c.list_packages(self.sid)
        self.assertIn(("pytest-pkg", "1.5"), [(p.name, p.version) for p in pkgs.packages])
        envs = self.c.list_envs()
        self.assertTrue(envs[-1].current)
        self.assertEqual(pkgs.env, envs[-1].id)
        info = self.c.info()
        self.assertIsNotNone(info.env)
        self.assertEqual(info.env.id, envs[-1].id)
        self.assertIn("numpy", [p.name.lower() for p in info.env.packages] + [m.requirement for m in info.env.missing])

    def test_install_stream(self):
        with self.c.install_packages_stream(self.sid, ["pytest-pkg"]) as stream:
            events = list(stream)
        self.assertEqual(events[-1].type, "installed")
        self.assertIn(b"Successfully installed pytest-pkg-1.5", b"".join(e.data for e in events))
        self.assertEqual([p.name for p in stream.result.installed], ["pytest-pkg"])
        with self.assertRaises(sandboxd.PackageNotAllowed):
            self.c.install_packages_stream(self.sid, ["pytest-refused"])


class DownloadTest(unittest.TestCase):
    def test_download_output_after_keep_files(self):
        c = D.client
        sid = new_id("d")
        c.create_session(USER, sid)
        data = os.urandom(5000)
        try:
            c.write_file(sid, "report.pdf", data)
            c.write_file(sid, "scratch.txt", "not kept")
        except BaseException:
            c.delete_session(sid)
            raise
        res = c.delete_session(sid, keep_files=True)
        self.assertEqual(len(res.kept_files), 1)
        name = res.kept_files[0]
        self.assertTrue(name.startswith("report") and name.endswith(".pdf"), name)
        self.assertEqual(c.download_output(USER, name), data)
        with self.assertRaises(sandboxd.NotFound):
            c.download_output(USER, "scratch.txt")
        with self.assertRaises(sandboxd.InvalidArgument):
            c.download_output("../bad", "x.pdf")


if __name__ == "__main__":
    unittest.main()


def write_quota(user, content):
    """Replace a user's quota.json in the daemon's state, as an operator
    would (a new file renamed over the old one)."""
    d = os.path.join(D.state, "workspaces", "user_" + user)
    os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = os.path.join(d, "quota.json.new")
    with open(tmp, "w") as f:
        f.write(content)
    os.rename(tmp, os.path.join(d, "quota.json"))


class QuotaTest(unittest.TestCase):
    def test_user_limits_usage_and_sessions(self):
        c = D.client
        user = new_id("qu")
        write_quota(user, '{"limits": {"max_workspace_size_mb": 32, "max_sessions": 2, "idle_freeze_after": "1h"}}')
        sid = new_id("q")
        c.create_session(user, sid)
        self.addCleanup(c.delete_session, sid)
        u = c.user(user)
        self.assertEqual(u.user_id, user)
        self.assertEqual((u.limits.max_workspace_size_mb, u.limits.session_disk_mb, u.limits.idle_freeze_after_sec), (32, 16, 3600.0))
        self.assertEqual(u.usage.quota_mode, c.info().quota_mode)
        self.assertEqual([s.id for s in u.sessions], [sid])
        if u.usage.enforced:
            self.assertEqual([d.session_id for d in u.usage.session_disks], [sid])
            self.assertEqual(u.usage.reserved_bytes, 16 << 20)
        # An upload past the session's disk: 429, naming the limit.
        with self.assertRaises(sandboxd.QuotaExceeded) as cm:
            c.write_file(sid, "big.bin", b"\0" * (20 << 20))
        self.assertEqual(cm.exception.status, 429)
        self.assertIn("session_disk_mb 16 MiB", cm.exception.message)
        with self.assertRaises(sandboxd.NotFound):
            c.user(new_id("nobody"))

    def test_invalid_quota(self):
        user = new_id("qi")
        write_quota(user, '{"limits": {"max_sessions": "two"}}')
        with self.assertRaises(sandboxd.InvalidQuota) as cm:
            D.client.create_session(user)
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "invalid_quota"))
        self.assertIn("quota.json", cm.exception.message)

    def test_expired(self):
        c = D.client
        user = new_id("qe")
        write_quota(user, '{"limits": {"max_session_duration_hours": 0.0003}}')  # about a second
        sid = new_id("e")
        c.create_session(user, sid)
        self.addCleanup(lambda: c.delete_session(sid))
        # The janitor looks every 10 s.
        self.assertTrue(wait_for(lambda: c.get_session(sid).status == "expired", timeout=60), "the session expires")
        self.assertIn("max_session_duration_hours", c.get_session(sid).reason)
        with self.assertRaises(sandboxd.Expired) as cm:
            c.exec(sid, command="true")
        self.assertEqual((cm.exception.status, cm.exception.code), (410, "expired"))
