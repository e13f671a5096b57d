"""The Mini-Agent tool adapters against a real daemon: the texts and fields
Mini-Agent's own tools produce, and the documented differences."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import tempfile
import time
import unittest
from types import SimpleNamespace

import _fixture
import _mini_agent
from _fixture import USER, new_id, wait_for

import sandboxd
from sandboxd import miniagent

D = None


def setUpModule():
    global D
    D = _fixture.start_daemon()


def tearDownModule():
    _fixture.stop_daemon(D)


def run(coro):
    return asyncio.run(coro)


class RecordingClient(sandboxd.Client):
    """A client that remembers the timeouts exec calls asked for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.timeouts = []

    def exec_stream(self, *a, **kw):
        self.timeouts.append(kw.get("timeout"))
        return super().exec_stream(*a, **kw)


class AdapterTestCase(unittest.TestCase):
    def setUp(self):
        self.c = D.client
        self.sid = new_id("m")
        self.c.create_session(USER, self.sid)
        self.addCleanup(self._delete)
        tools = miniagent.tools(self.c, self.sid)
        self.tools = {t.name: t for t in tools}
        self.bash = self.tools["bash"]
        self.bash_output = self.tools["bash_output"]
        self.bash_kill = self.tools["bash_kill"]
        self.read = self.tools["read_file"]
        self.write = self.tools["write_file"]
        self.edit = self.tools["edit_file"]

    def _delete(self):
        try:
            self.c.delete_session(self.sid)
        except sandboxd.NotFound:
            pass

    def no_process(self, name):
        return self.c.exec(self.sid, argv=["pgrep", "-x", name]).stdout == ""


class BashTest(AdapterTestCase):
    def test_tool_set(self):
        self.assertEqual(
            sorted(self.tools), ["bash", "bash_kill", "bash_output", "edit_file", "read_file", "write_file"]
        )
        for t in self.tools.values():
            self.assertEqual(t.session_id, self.sid)

    def test_echo(self):
        r = run(self.bash.execute(command="echo hello"))
        self.assertTrue(r.success)
        self.assertEqual((r.content, r.stdout, r.stderr, r.exit_code, r.error), ("hello\n", "hello\n", "", 0, None))
        self.assertIsNone(r.bash_id)

    def test_no_output(self):
        r = run(self.bash.execute(command="true"))
        self.assertEqual((r.success, r.content), (True, "(no output)"))

    def test_stdout_and_stderr_apart(self):
        r = run(self.bash.execute(command="echo out; echo err >&2"))
        self.assertTrue(r.success)
        self.assertEqual((r.stdout, r.stderr), ("out\n", "err\n"))
        self.assertEqual(r.content, "out\n\n[stderr]:\nerr\n")

    def test_failing_command(self):
        r = run(self.bash.execute(command="echo partial; echo bad thing >&2; exit 3"))
        self.assertFalse(r.success)
        self.assertEqual(r.exit_code, 3)
        self.assertEqual(r.error, "Command failed with exit code 3\nbad thing")
        self.assertEqual(r.content, "partial\n\n[stderr]:\nbad thing\n\n[exit_code]:\n3")
        r = run(self.bash.execute(command="exit 5"))
        self.assertEqual((r.error, r.content), ("Command failed with exit code 5", "\n[exit_code]:\n5"))

    def test_timeout_kills_everything(self):
        t0 = time.monotonic()
        r = run(self.bash.execute(command="sleep 10", timeout=1))
        self.assertLess(time.monotonic() - t0, 8)
        self.assertFalse(r.success)
        self.assertEqual(r.error, "Command timed out after 1 seconds")
        self.assertEqual((r.stdout, r.stderr, r.exit_code), ("", "Command timed out after 1 seconds", -1))
        self.assertTrue(r.metadata["timed_out"])
        # No sleep is left in the session.
        self.assertEqual(self.c.exec(self.sid, argv=["pgrep", "-x", "sleep"]).stdout, "")
        ps = self.c.exec(self.sid, argv=["ps", "-eo", "comm="]).stdout.split()
        self.assertNotIn("sleep", ps)

    def test_timeout_clamped_as_mini_agent(self):
        client = RecordingClient(D.socket)
        bash = miniagent.BashTool(client, self.sid)
        for asked in (0, -3, 1000, 600, 1, 45):
            r = run(bash.execute(command="echo ok", timeout=asked))
            self.assertTrue(r.success, r)
        self.assertEqual(client.timeouts, [120, 120, 600, 600, 1, 45])
        r = run(bash.execute(command="echo ok"))
        self.assertEqual(client.timeouts[-1], 120)

    def test_timeout_of_the_wrong_type_fails_as_in_mini_agent(self):
        # Issue 14.3: Mini-Agent compares the timeout with 600 before
        # running anything, so a string or null fails with Python's
        # TypeError text and the command never runs.
        for bad, typename in (("5", "str"), (None, "NoneType")):
            r = run(self.bash.execute(command="touch ran", timeout=bad))
            self.assertFalse(r.success, bad)
            msg = f"'>' not supported between instances of '{typename}' and 'int'"
            self.assertEqual((r.error, r.stderr, r.exit_code), (msg, msg, -1))
            r = run(self.bash.execute(command="touch ran", timeout=bad, run_in_background=True))
            self.assertFalse(r.success, bad)
        self.assertEqual(self.c.exec(self.sid, argv=["ls", "ran"]).exit_code, 2, "the command ran")
        # A float is a number like any other, as there.
        r = run(self.bash.execute(command="echo ok", timeout=2.5))
        self.assertEqual((r.success, r.stdout), (True, "ok\n"))

    def test_cut_output_is_said_in_the_text(self):
        # Issue 14.4: output cut at the 1 MiB cap is said where the model
        # reads (content on success, error on failure), not only in metadata.
        big = "head -c 1100000 /dev/zero | tr '\\0' a"
        r = run(self.bash.execute(command=big))
        self.assertTrue(r.success, r.error)
        self.assertTrue(r.metadata["stdout_truncated"])
        # (Tails only in the messages: the whole text is a megabyte.)
        self.assertTrue(r.stdout[: miniagent.OUTPUT_CAP] == "a" * miniagent.OUTPUT_CAP, r.stdout[-200:])
        self.assertIn("[stdout truncated", r.stdout[-200:])
        self.assertIn("[stdout truncated", r.content[-200:])
        r = run(self.bash.execute(command=big + " >&2; exit 1"))
        self.assertFalse(r.success)
        self.assertTrue(r.metadata["stderr_truncated"])
        self.assertIn("[stderr truncated", r.error[-200:])
        r = run(self.bash.execute(command="echo small"))
        self.assertNotIn("truncated", r.content)

    def test_cancel_kills_the_command(self):
        async def go():
            task = asyncio.ensure_future(self.bash.execute(command="sleep 30", timeout=60))
            await asyncio.sleep(1.0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        run(go())
        self.assertTrue(wait_for(lambda: self.no_process("sleep"), 10))

    def test_runs_in_workspace(self):
        r = run(self.bash.execute(command="pwd; id -un"))
        self.assertEqual(r.stdout.splitlines()[0], "/workspace")


class BackgroundTest(AdapterTestCase):
    SCRIPT = (
        'echo "Line 1"; sleep 2; '
        'for i in 2 3 4 5; do echo "Line $i"; done; '
        "touch /tmp/bg-done; sleep 60"
    )

    def test_start_output_filter_kill(self):
        r = run(self.bash.execute(command=self.SCRIPT, run_in_background=True))
        self.assertTrue(r.success, r)
        bid = r.bash_id
        self.assertTrue(bid)
        self.assertEqual(r.stdout, f"Background command started with ID: {bid}")
        self.assertEqual(r.content, f"Background command started with ID: {bid}\n[bash_id]:\n{bid}")
        self.assertEqual(r.exit_code, 0)

        # Incremental: Line 1 arrives while the command still sleeps.
        got = []

        def first():
            o = run(self.bash_output.execute(bash_id=bid))
            self.assertTrue(o.success, o)
            got.append(o)
            return "Line 1" in o.stdout

        self.assertTrue(wait_for(first, 10, 0.2), [g.content for g in got])
        last = got[-1]
        self.assertEqual(last.stdout, "Line 1")
        self.assertEqual(last.content, f"Line 1\n[bash_id]:\n{bid}")
        self.assertEqual(last.metadata["status"], "running")
        # Read once: nothing new right away.
        o = run(self.bash_output.execute(bash_id=bid))
        self.assertEqual((o.stdout, o.content), ("", f"\n[bash_id]:\n{bid}"))

        # The rest, filtered: only Line 2 and Line 4 come back.
        self.assertTrue(wait_for(lambda: self.c.exec(self.sid, argv=["test", "-f", "/tmp/bg-done"]).exit_code == 0, 15))
        o = run(self.bash_output.execute(bash_id=bid, filter_str="Line [24]"))
        self.assertTrue(o.success, o)
        self.assertEqual(o.stdout, "Line 2\nLine 4")
        # The lines the filter dropped are gone too.
        o = run(self.bash_output.execute(bash_id=bid))
        self.assertEqual(o.stdout, "")

        k = run(self.bash_kill.execute(bash_id=bid))
        self.assertTrue(k.success, k)
        self.assertEqual(k.bash_id, bid)
        # 128+15 as a shell reports SIGTERM (Mini-Agent itself says -15).
        self.assertIn(k.exit_code, (143, -15))
        self.assertEqual(k.content, f"\n[bash_id]:\n{bid}\n[exit_code]:\n{k.exit_code}")
        self.assertTrue(wait_for(lambda: self.no_process("sleep"), 10))

        o = run(self.bash_output.execute(bash_id=bid))
        self.assertFalse(o.success)
        self.assertEqual(o.error, f"Shell not found: {bid}. Available: none")
        self.assertEqual(o.exit_code, -1)
        k = run(self.bash_kill.execute(bash_id=bid))
        self.assertFalse(k.success)
        self.assertEqual(k.error, f"Shell not found: {bid}. Available: none")
        self.assertEqual(k.stderr, f"Shell not found: {bid}")

    def test_three_at_once(self):
        ids = []
        for i in range(3):
            r = run(self.bash.execute(command=f"echo start-{i}; echo err-{i} >&2; sleep 60", run_in_background=True))
            self.assertTrue(r.success, r)
            ids.append(r.bash_id)
        self.assertEqual(len(set(ids)), 3)
        for i, bid in enumerate(ids):
            seen = []

            def both():
                seen.extend(run(self.bash_output.execute(bash_id=bid)).stdout.splitlines())
                return len(seen) >= 2

            self.assertTrue(wait_for(both, 10), seen)
            self.assertEqual(sorted(seen), [f"err-{i}", f"start-{i}"])
        # Another id lists the live ones.
        o = run(self.bash_output.execute(bash_id="nope"))
        self.assertFalse(o.success)
        self.assertTrue(o.error.startswith("Shell not found: nope. Available: ["), o.error)
        for bid in ids:
            self.assertIn(repr(bid), o.error)
        for bid in ids:
            self.assertTrue(run(self.bash_kill.execute(bash_id=bid)).success)
        self.assertTrue(wait_for(lambda: self.no_process("sleep"), 10))

    def test_exited_command_exit_code(self):
        r = run(self.bash.execute(command="echo done; exit 4", run_in_background=True))
        bid = r.bash_id

        def ended():
            o = run(self.bash_output.execute(bash_id=bid))
            seen.append(o)
            return o.metadata["process_status"] != "running"

        seen = []
        self.assertTrue(wait_for(ended, 10))
        self.assertEqual("\n".join(o.stdout for o in seen if o.stdout), "done")
        self.assertEqual(seen[-1].exit_code, 4)
        self.assertEqual(seen[-1].metadata["status"], "failed")
        self.assertTrue(seen[-1].content.endswith("\n[exit_code]:\n4"))
        k = run(self.bash_kill.execute(bash_id=bid))
        self.assertTrue(k.success)
        self.assertEqual(k.exit_code, 4)

    def test_dropped_lines_are_said_in_the_text(self):
        # Issue 14.4: lines the daemon's bounded buffer dropped unread are
        # counted in the text the model reads, before the lines that remain.
        r = run(self.bash.execute(command="seq 1 400000", run_in_background=True))
        bid = r.bash_id
        self.assertTrue(wait_for(lambda: self.c.list_processes(self.sid)[0].status != "running", 20))
        o = run(self.bash_output.execute(bash_id=bid))
        self.assertTrue(o.success, o)
        dropped = o.metadata["dropped"]
        self.assertGreater(dropped, 0)
        head = o.stdout.split("\n", 2)
        self.assertIn(f"[{dropped} earlier output lines were dropped", head[0])
        self.assertEqual(o.content[: len(head[0])], head[0])
        self.assertEqual(head[1], str(dropped + 1))
        self.assertEqual(o.stdout[-7:], "\n400000")
        # Nothing dropped since: no note.
        o = run(self.bash_output.execute(bash_id=bid))
        self.assertEqual((o.stdout, o.metadata["dropped"]), ("", 0))
        run(self.bash_kill.execute(bash_id=bid))

    def test_filter_python_only_syntax(self):
        r = run(self.bash.execute(command="echo apple; echo banana; echo cherry", run_in_background=True))
        bid = r.bash_id
        self.assertTrue(wait_for(lambda: self.c.list_processes(self.sid)[0].status != "running", 10))
        # A lookahead is Python re but not RE2: filtered here instead.
        o = run(self.bash_output.execute(bash_id=bid, filter_str="^(?=b)"))
        self.assertTrue(o.success, o)
        self.assertEqual(o.stdout, "banana")
        run(self.bash_kill.execute(bash_id=bid))


class FilesTest(AdapterTestCase):
    def test_write_then_read(self):
        w = run(self.write.execute(path="notes/hello.txt", content="hello\nworld\n"))
        self.assertTrue(w.success, w)
        self.assertEqual(w.content, "Successfully wrote to /workspace/notes/hello.txt")
        r = run(self.read.execute(path="notes/hello.txt"))
        self.assertTrue(r.success, r)
        self.assertEqual(r.content, "     1|hello\n     2|world")
        r = run(self.read.execute(path="/workspace/notes/hello.txt"))
        self.assertEqual(r.content, "     1|hello\n     2|world")
        self.assertEqual(self.c.exec(self.sid, command="cat notes/hello.txt").stdout, "hello\nworld\n")

    def test_read_offset_limit(self):
        run(self.write.execute(path="ten.txt", content="".join(f"line {i}\n" for i in range(1, 11))))
        r = run(self.read.execute(path="ten.txt", offset=3, limit=2))
        self.assertEqual(r.content, "     3|line 3\n     4|line 4")
        r = run(self.read.execute(path="ten.txt", offset=9))
        self.assertEqual(r.content, "     9|line 9\n    10|line 10")
        r = run(self.read.execute(path="ten.txt", limit=1))
        self.assertEqual(r.content, "     1|line 1")
        r = run(self.read.execute(path="ten.txt", offset=20, limit=5))
        self.assertEqual((r.success, r.content), (True, ""))

    def test_read_offset_limit_slices_as_mini_agent(self):
        # Issue 14.2: Mini-Agent takes lines[start:end] with start =
        # offset-1 clamped at 0 and end = start+limit unclamped, so a
        # negative end counts from the end of the file as a Python slice.
        lines = [f"line {i}" for i in range(1, 6)]
        run(self.write.execute(path="five.txt", content="".join(x + "\n" for x in lines)))

        def mini_agent(offset, limit):
            start = (offset - 1) if offset else 0
            end = (start + limit) if limit else len(lines)
            if start < 0:
                start = 0
            if end > len(lines):
                end = len(lines)
            return "\n".join(f"{i:6d}|{x}" for i, x in enumerate(lines[start:end], start=start + 1))

        cases = [(-1, 1), (None, -1), (1, -2), (3, -1), (0, 2), (2, 0), (-5, 3), (6, 1), (4, 10),
                 (None, None), (-1, None), (2, -4), (5, -1), (True, 2)]
        for offset, limit in cases:
            with self.subTest(offset=offset, limit=limit):
                r = run(self.read.execute(path="five.txt", offset=offset, limit=limit))
                self.assertTrue(r.success, r)
                self.assertEqual(r.content, mini_agent(offset, limit))
        self.assertEqual(run(self.read.execute(path="five.txt", offset=-1, limit=1)).content.count("|"), 4)

    def test_read_offset_of_the_wrong_type_fails_as_in_mini_agent(self):
        run(self.write.execute(path="one.txt", content="x\n"))
        r = run(self.read.execute(path="one.txt", offset="2"))
        self.assertEqual((r.success, r.error), (False, "unsupported operand type(s) for -: 'str' and 'int'"))
        r = run(self.read.execute(path="one.txt", limit=1.5))
        self.assertEqual((r.success, r.error), (False, "slice indices must be integers or None or have an __index__ method"))
        # A missing file is reported first, as there.
        r = run(self.read.execute(path="none.txt", offset="2"))
        self.assertEqual((r.success, r.error), (False, "File not found: none.txt"))

    def test_read_missing(self):
        r = run(self.read.execute(path="missing.txt"))
        self.assertFalse(r.success)
        self.assertEqual(r.error, "File not found: missing.txt")

    def test_edit_once_and_ambiguous(self):
        run(self.write.execute(path="code.py", content="x = 1\ny = 2\nx = 1\nz = 3\n"))
        e = run(self.edit.execute(path="code.py", old_str="y = 2", new_str="y = 20"))
        self.assertTrue(e.success, e)
        self.assertEqual(e.content, "Successfully edited /workspace/code.py")
        e = run(self.edit.execute(path="code.py", old_str="x = 1", new_str="x = 10"))
        self.assertFalse(e.success)
        self.assertIn("occurs 2 times", e.error)
        self.assertEqual(self.c.read_bytes(self.sid, "code.py"), b"x = 1\ny = 20\nx = 1\nz = 3\n")
        e = run(self.edit.execute(path="code.py", old_str="nothing like it", new_str="-"))
        self.assertEqual((e.success, e.error), (False, "Text not found in file: nothing like it"))
        e = run(self.edit.execute(path="nope.py", old_str="a", new_str="b"))
        self.assertEqual((e.success, e.error), (False, "File not found: nope.py"))

    def test_outside_workspace_refused(self):
        for path in ("/etc/passwd", "../x", "sub/../../x", "/workspace/../etc/passwd"):
            r = run(self.read.execute(path=path))
            self.assertFalse(r.success, path)
            self.assertIn("outside the session workspace", r.error)
            w = run(self.write.execute(path=path, content="x"))
            self.assertFalse(w.success, path)
            self.assertIn("outside the session workspace", w.error)
            e = run(self.edit.execute(path=path, old_str="root", new_str="toor"))
            self.assertFalse(e.success, path)
        # A symlink out of the workspace does not help either.
        self.c.exec(self.sid, command="ln -s /etc/passwd link")
        r = run(self.read.execute(path="link"))
        self.assertFalse(r.success)
        self.assertNotIn("root:", r.content)


class SessionGoneTest(AdapterTestCase):
    def test_errors_name_the_session(self):
        self.c.delete_session(self.sid)
        r = run(self.read.execute(path="a.txt"))
        self.assertFalse(r.success)
        self.assertIn(self.sid, r.error)
        self.assertNotIn("File not found", r.error)
        o = run(self.bash_output.execute(bash_id="p1"))
        self.assertFalse(o.success)
        self.assertTrue(o.error.startswith("Failed to get bash output: "), o.error)
        k = run(self.bash_kill.execute(bash_id="p1"))
        self.assertTrue(k.error.startswith("Failed to terminate bash shell: "), k.error)
        b = run(self.bash.execute(command="true"))
        self.assertEqual((b.success, b.exit_code), (False, -1))
        self.assertIn(self.sid, b.error)


README = os.path.join(_fixture.PYROOT, "README.md")


def documented(*phrases):
    """The phrases the README and the module docstring are missing."""
    with open(README, encoding="utf-8") as f:
        readme = " ".join(f.read().split())
    doc = " ".join((miniagent.__doc__ or "").split()).replace("``", "`")  # reST to Markdown
    return [(where, p) for p in phrases for where, text in (("README", readme), ("docstring", doc)) if p not in text]


class DocumentedDifferencesTest(AdapterTestCase):
    """Issue 14.7: each difference from Mini-Agent that a model or a backend
    can meet is documented, in the README and the module docstring, next to
    a test of the behaviour itself."""

    def test_tool_result_has_no_metadata_in_mini_agent(self):
        with open(README, encoding="utf-8") as f:
            readme = " ".join(f.read().split())
        self.assertNotIn("with the same fields (`success`, `content`, `error`, `metadata`", readme)
        self.assertEqual(documented("`metadata` is this module's addition"), [])

    def test_nohup_child_dies_with_the_foreground_command(self):
        r = run(self.bash.execute(command="nohup sleep 100 >/dev/null 2>&1 & echo started"))
        self.assertEqual(r.stdout, "started\n")
        self.assertTrue(self.no_process("sleep"), "a nohup child outlived its foreground command")
        self.assertEqual(documented("`nohup … &`", "run_in_background"), [])

    def test_eight_background_processes_at_most(self):
        for i in range(8):
            r = run(self.bash.execute(command="sleep 100", run_in_background=True))
            self.assertTrue(r.success, (i, r.error))
        r = run(self.bash.execute(command="sleep 100", run_in_background=True))
        self.assertFalse(r.success)
        self.assertIn("quota exceeded", r.error)
        self.assertEqual(documented("8 live background commands"), [])

    def test_background_output_drops_cr_before_newline(self):
        r = run(self.bash.execute(command="printf 'a\\r\\nb\\rc\\n'", run_in_background=True))
        self.assertTrue(wait_for(lambda: self.c.list_processes(self.sid)[0].status != "running", 10))
        o = run(self.bash_output.execute(bash_id=r.bash_id))
        self.assertEqual(o.stdout, "a\nb\rc")  # Mini-Agent: "a\r\nb\rc"
        self.assertEqual(documented("a `\\r` before the `\\n` is dropped"), [])

    def test_sigkill_after_the_grace_reports_137(self):
        r = run(self.bash.execute(command="trap '' TERM; echo up; sleep 100", run_in_background=True))
        self.assertTrue(wait_for(lambda: "up" in run(self.bash_output.execute(bash_id=r.bash_id)).stdout, 10))
        k = run(self.bash_kill.execute(bash_id=r.bash_id))  # SIGTERM ignored: SIGKILL after 5 s
        self.assertEqual((k.exit_code, k.metadata["signal"]), (137, "SIGKILL"))
        self.assertEqual(documented("**137**", "reports **0**"), [])


class ScriptedLLM:
    """An LLM client for Mini-Agent's Agent that answers with a fixed series
    of tool calls, one step each, then a final text."""

    def __init__(self, calls, final="done"):
        self.steps = [[c] for c in calls]
        self.final = final
        self.seen = []  # what the tools answered, as the model reads it

    async def generate(self, messages, tools=None):
        self.seen = [m.content for m in messages if m.role == "tool"]
        if not self.steps:
            return SimpleNamespace(content=self.final, tool_calls=None)
        n = len(self.steps)
        calls = [
            SimpleNamespace(id=f"call{n}", function=SimpleNamespace(name=name, arguments=args))
            for name, args in self.steps.pop(0)
        ]
        return SimpleNamespace(content="", tool_calls=calls)


def dump(model):
    """pydantic v2's model_dump, or v1's dict."""
    return model.model_dump() if hasattr(model, "model_dump") else model.dict()


class MiniAgentInstalledTest(AdapterTestCase):
    """Issue 14.6: with mini_agent importable, the adapters are its classes'
    subclasses (the stand-in package of tests/fakes has Mini-Agent's
    shape); issue 14.5: an Agent built with the helper names /workspace."""

    def setUp(self):
        super().setUp()
        stack = contextlib.ExitStack()
        self.addCleanup(stack.close)
        self.mod = stack.enter_context(_mini_agent.miniagent_module(installed=True))
        import mini_agent.agent
        import mini_agent.tools.base
        import mini_agent.tools.bash_tool
        import pydantic

        self.base, self.bash_tool, self.agent_mod, self.pydantic = (
            mini_agent.tools.base, mini_agent.tools.bash_tool, mini_agent.agent, pydantic)
        self.mtools = {t.name: t for t in self.mod.tools(self.c, self.sid)}

    def test_tools_and_results_are_mini_agents(self):
        self.assertTrue(self.mod.MINI_AGENT)
        for t in self.mtools.values():
            self.assertIsInstance(t, self.base.Tool)
            # The schemas the model gets do not depend on the path taken.
            self.assertEqual(t.to_schema(), self.tools[t.name].to_schema())
            self.assertEqual(t.to_openai_schema(), self.tools[t.name].to_openai_schema())
        r = run(self.mtools["bash"].execute(command="echo hi; echo oops >&2"))
        self.assertIsInstance(r, self.bash_tool.BashOutputResult)
        self.assertIsInstance(r, self.base.ToolResult)
        self.assertIsInstance(r, self.mod.ToolResult)
        self.assertIsInstance(r, self.pydantic.BaseModel)
        self.assertEqual((r.success, r.content, r.exit_code), (True, "hi\n\n[stderr]:\noops\n", 0))
        d = dump(r)
        self.assertEqual((d["stdout"], d["stderr"], d["bash_id"]), ("hi\n", "oops\n", None))
        self.assertEqual(d["metadata"]["exit_code"], 0)
        js = json.loads(r.model_dump_json() if hasattr(r, "model_dump_json") else r.json())
        self.assertEqual(js["content"], r.content)
        copy = r.model_copy(update={"error": "x"}) if hasattr(r, "model_copy") else r.copy(update={"error": "x"})
        self.assertEqual((copy.error, copy.stdout), ("x", "hi\n"))

        w = run(self.mtools["write_file"].execute(path="a.txt", content="one\n"))
        self.assertIsInstance(w, self.base.ToolResult)
        self.assertNotIsInstance(w, self.bash_tool.BashOutputResult)
        self.assertEqual(w.content, "Successfully wrote to /workspace/a.txt")
        rd = run(self.mtools["read_file"].execute(path="a.txt"))
        self.assertEqual((type(rd), rd.content, rd.metadata), (self.mod.ToolResult, "     1|one", {"total_lines": 1}))
        bad = run(self.mtools["bash"].execute(command="exit 3"))
        self.assertEqual((bad.success, bad.error, bad.content), (False, "Command failed with exit code 3", "\n[exit_code]:\n3"))
        bg = run(self.mtools["bash"].execute(command="sleep 30", run_in_background=True))
        self.assertEqual(bg.content, f"Background command started with ID: {bg.bash_id}\n[bash_id]:\n{bg.bash_id}")
        k = run(self.mtools["bash_kill"].execute(bash_id=bg.bash_id))
        self.assertIsInstance(k, self.bash_tool.BashOutputResult)

    def test_agent_prompt_names_the_sandbox_workspace(self):
        host_dirs = set(os.listdir(tempfile.gettempdir()))
        llm = ScriptedLLM([])
        agent = self.mod.new_agent(llm, self.c, self.sid, "You are a helpful assistant.")
        self.assertIsInstance(agent, self.agent_mod.Agent)
        self.assertTrue(agent.system_prompt.startswith("You are a helpful assistant."))
        self.assertIn("## Current Workspace\nYou are currently working in: `/workspace`", agent.system_prompt)
        self.assertEqual(agent.system_prompt.count("Current Workspace"), 1)
        self.assertNotIn(os.getcwd(), agent.system_prompt)
        self.assertNotIn(str(agent.workspace_dir), agent.system_prompt.replace("/workspace", ""))
        self.assertEqual(sorted(agent.tools), sorted(self.tools))
        # Agent created no directory on the host for its workspace.
        self.assertTrue(set(os.listdir(tempfile.gettempdir())) <= host_dirs | {os.path.basename(str(agent.workspace_dir))})
        self.assertTrue(os.path.isdir(agent.workspace_dir))
        kw = self.mod.agent_kwargs(self.c, self.sid, "P", extra_tools=[self.mtools["bash"]])
        self.assertEqual(len(kw["tools"]), 7)

    def test_agent_loop_uses_absolute_workspace_paths(self):
        # What a model told "/workspace" does: absolute paths there work.
        llm = ScriptedLLM([
            ("write_file", {"path": "/workspace/hello.py", "content": "print(6 * 7)\n"}),
            ("bash", {"command": "python3 /workspace/hello.py > /workspace/answer.txt"}),
            ("read_file", {"path": "/workspace/answer.txt"}),
        ], final="The answer is 42.")
        agent = self.mod.new_agent(llm, self.c, self.sid, "System.")
        agent.add_user_message("compute")
        self.assertEqual(run(agent.run()), "The answer is 42.")
        self.assertEqual(llm.seen, [
            "Successfully wrote to /workspace/hello.py",
            "(no output)",
            "     1|42",
        ])
        self.assertEqual(self.c.read_bytes(self.sid, "answer.txt"), b"42\n")


class StdlibPathTest(unittest.TestCase):
    """Issue 14.6: without mini_agent, the results stay stdlib dataclasses."""

    def test_dataclasses_without_mini_agent(self):
        with _mini_agent.miniagent_module(installed=False) as mod:
            self.assertFalse(mod.MINI_AGENT)
            self.assertTrue(dataclasses.is_dataclass(mod.ToolResult))
            self.assertTrue(issubclass(mod.BashOutputResult, mod.ToolResult))
            self.assertIs(mod.SandboxTool.__mro__[1], mod.Tool)
            self.assertEqual(mod.Tool.__module__, mod.__name__)
            r = mod.BashOutputResult(success=True, stdout="x", stderr="", exit_code=0)
            self.assertEqual(r.content, "x")
            self.assertEqual(json.loads(r.model_dump_json())["stdout"], "x")
            self.assertEqual(r.model_copy(update={"error": "e"}).error, "e")
            with self.assertRaises(ImportError):
                mod.new_agent(None, None, "s", "p")  # no Agent to build


if __name__ == "__main__":
    unittest.main()
