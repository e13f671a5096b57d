"""Unit tests that need no daemon: error mapping, JSON types, the adapters'
formatting and argument rules."""

from __future__ import annotations

import asyncio
import json
import unittest
from datetime import timezone

import _fixture  # noqa: F401  (puts api/python on sys.path)
import sandboxd
from sandboxd import errors, miniagent
from sandboxd.client import ExecStream, _encode_query, _go_duration, _seg
from sandboxd.types import ExecEvent, ProcessOutput, Session, TextFile, parse_time


class ErrorTest(unittest.TestCase):
    def test_every_code_has_its_class_and_status(self):
        cases = {
            "invalid_argument": (sandboxd.InvalidArgument, 400),
            "permission_denied": (sandboxd.PermissionDenied, 403),
            "not_found": (sandboxd.NotFound, 404),
            "method_not_allowed": (sandboxd.MethodNotAllowed, 405),
            "already_exists": (sandboxd.AlreadyExists, 409),
            "conflict": (sandboxd.Conflict, 409),
            "too_large": (sandboxd.TooLarge, 413),
            "unsupported_content": (sandboxd.UnsupportedContent, 415),
            "quota_exceeded": (sandboxd.QuotaExceeded, 429),
            "unavailable": (sandboxd.Unavailable, 503),
            "internal": (sandboxd.InternalError, 500),
        }
        for code, (cls, status) in cases.items():
            body = json.dumps({"error": "boom: " + code, "code": code}).encode()
            e = errors.error_from_response(status, body)
            self.assertIs(type(e), cls, code)
            self.assertIsInstance(e, sandboxd.SandboxdError)
            self.assertEqual((e.status, e.code, e.message), (status, code, "boom: " + code))
            self.assertIn("HTTP %d" % status, str(e))

    def test_non_json_body_is_internal_with_its_text(self):
        e = errors.error_from_response(502, b"upstream went away\n", "Bad Gateway")
        self.assertIsInstance(e, sandboxd.InternalError)
        self.assertEqual((e.status, e.message), (502, "upstream went away"))
        e = errors.error_from_response(500, b"", "Internal Server Error")
        self.assertEqual(e.message, "Internal Server Error")

    def test_unknown_code_is_the_base_class(self):
        e = errors.error_from_response(418, b'{"error": "teapot", "code": "teapot"}')
        self.assertIs(type(e), sandboxd.SandboxdError)
        self.assertEqual((e.code, e.status), ("teapot", 418))


class TypesTest(unittest.TestCase):
    def test_unknown_fields_are_ignored_and_times_parsed(self):
        s = Session.from_dict({
            "id": "c1", "user_id": "u", "created_at": "2025-06-01T12:00:00.123456789Z",
            "limits": {"cpus": 0.5, "memory_mb": 256, "future": 1}, "status": "running",
            "workspace": "/workspace", "brand_new_field": [1, 2],
        })
        self.assertEqual(s.id, "c1")
        self.assertEqual(s.limits.memory_mb, 256)
        self.assertEqual(s.created_at.tzinfo, timezone.utc)
        self.assertEqual(s.created_at.microsecond, 123456)

    def test_process_output_embeds_the_process(self):
        p = ProcessOutput.from_dict({
            "id": "p1", "pid": 7, "command": "sleep 9", "status": "killed", "exit_code": 143,
            "signal": "SIGTERM", "started_at": "2025-06-01T12:00:00+02:00", "lines": ["a", "b"], "dropped": 2,
        })
        self.assertEqual((p.id, p.exit_code, p.lines, p.dropped), ("p1", 143, ["a", "b"], 2))
        self.assertIsNone(p.ended_at)
        self.assertEqual(p.started_at.utcoffset().total_seconds(), 7200)
        self.assertIsNone(ProcessOutput.from_dict({"status": "running"}).exit_code)

    def test_go_zero_time_is_none(self):
        self.assertIsNone(parse_time("0001-01-01T00:00:00Z"))
        self.assertIsNone(parse_time(""))

    def test_exec_event_data(self):
        self.assertEqual(ExecEvent.from_dict({"type": "stdout", "data": "héllo"}).data, "héllo".encode())
        ev = ExecEvent.from_dict({"type": "stderr", "data_b64": "/wA="})
        self.assertEqual(ev.data, b"\xff\x00")
        ev = ExecEvent.from_dict({"type": "exit", "result": {"exit_code": 137, "signal": "SIGKILL", "timed_out": True}})
        self.assertEqual((ev.result.exit_code, ev.result.timed_out), (137, True))

    def test_text_file(self):
        t = TextFile.from_dict({"path": "a", "lines": [{"n": 3, "text": "x"}], "total_lines": 9})
        self.assertEqual((t.lines[0].n, t.lines[0].text, t.total_lines), (3, "x", 9))


class EncodingTest(unittest.TestCase):
    def test_query_and_path_escaping(self):
        self.assertEqual(_seg("a/b c?%"), "a%2Fb%20c%3F%25")
        q = _encode_query({"path": "dir/a b&c=d.txt", "root": None, "recursive": True})
        self.assertEqual(q, "?path=dir%2Fa%20b%26c%3Dd.txt&recursive=true")

    def test_grace_durations(self):
        self.assertEqual(_go_duration(2), "2000ms")
        self.assertEqual(_go_duration(0.25), "250ms")
        self.assertEqual(_go_duration("1m"), "1m")

    def test_command_body_needs_one_of_command_and_argv(self):
        c = sandboxd.Client("/nonexistent.sock")
        with self.assertRaises(ValueError):
            c.exec("s", command="a", argv=["b"])
        with self.assertRaises(ValueError):
            c.exec("s")


class _FakeResp:
    """Stands in for an HTTPResponse: read1 hands out the given chunks."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def read1(self, n=-1):
        return self.chunks.pop(0) if self.chunks else b""

    def close(self):
        pass


class StreamParseTest(unittest.TestCase):
    def stream(self, *chunks):
        return ExecStream(None, _FakeResp(chunks))

    def test_lines_split_anywhere(self):
        s = self.stream(
            b'{"type":"stdout","da', b'ta":"a\\n"}\n{"type":"future","x":1}\n\n{"type":"stderr","data_b64":"/w=="}\n',
            b'{"type":"exit","result":{"exit_code":3}}',  # no final newline
        )
        events = list(s)
        self.assertEqual([(e.type, e.data) for e in events], [("stdout", b"a\n"), ("stderr", b"\xff"), ("exit", b"")])
        self.assertEqual(s.result.exit_code, 3)

    def test_error_event_ends_the_stream(self):
        s = self.stream(b'{"type":"error","error":"boom","code":"internal"}\n{"type":"stdout","data":"late"}\n')
        events = list(s)
        self.assertEqual([e.type for e in events], ["error"])
        self.assertEqual((s.error_event.error, s.error_event.code), ("boom", "internal"))

    def test_cut_stream_is_an_error(self):
        s = self.stream(b'{"type":"stdout","data":"a"}\n')
        self.assertEqual(next(s).data, b"a")
        with self.assertRaises(sandboxd.InternalError):
            next(s)
        with self.assertRaises(StopIteration):
            next(s)


class AdapterUnitTest(unittest.TestCase):
    def test_bash_output_result_content(self):
        R = miniagent.BashOutputResult
        self.assertEqual(R(success=True, stdout="hi\n").content, "hi\n")
        self.assertEqual(R(success=True).content, "(no output)")
        self.assertEqual(
            R(success=False, stdout="o", stderr="e", exit_code=2, bash_id="p1").content,
            "o\n[stderr]:\ne\n[bash_id]:\np1\n[exit_code]:\n2",
        )

    def test_timeout_clamp_as_mini_agent(self):
        self.assertEqual(miniagent._clamp_timeout(0), 120)
        self.assertEqual(miniagent._clamp_timeout(-5), 120)
        self.assertEqual(miniagent._clamp_timeout(1), 1)
        self.assertEqual(miniagent._clamp_timeout(600), 600)
        self.assertEqual(miniagent._clamp_timeout(1000), 600)

    def test_paths_confined(self):
        self.assertEqual(miniagent._resolve("a/b.txt"), "/workspace/a/b.txt")
        self.assertEqual(miniagent._resolve("/workspace/a.txt"), "/workspace/a.txt")
        self.assertEqual(miniagent._resolve("./x/../y"), "/workspace/y")
        for bad in ("/etc/passwd", "../x", "a/../../x", "/workspace/../etc", "/workspacex/a", ""):
            with self.assertRaises(miniagent.PathRefused, msg=bad):
                miniagent._resolve(bad)

    def test_schemas(self):
        ts = miniagent.tools(sandboxd.Client("/nonexistent.sock"), "s1")
        self.assertEqual([t.name for t in ts], ["bash", "bash_output", "bash_kill", "read_file", "write_file", "edit_file"])
        for t in ts:
            self.assertEqual(t.to_schema()["input_schema"], t.parameters)
            self.assertEqual(t.to_openai_schema()["function"]["name"], t.name)
        bash = ts[0].parameters
        self.assertEqual(bash["required"], ["command"])
        self.assertEqual(bash["properties"]["timeout"]["default"], 120)
        self.assertEqual(ts[3].parameters["required"], ["path"])
        self.assertEqual(ts[5].parameters["required"], ["path", "old_str", "new_str"])

    def test_unreachable_daemon_is_an_error_result(self):
        tool = miniagent.BashTool(sandboxd.Client("/nonexistent/sandboxd.sock"), "s1")
        r = asyncio.run(tool.execute(command="true"))
        self.assertFalse(r.success)
        self.assertEqual(r.exit_code, -1)
        self.assertTrue(r.error)

    def test_truncate(self):
        text = "\n".join("line %d" % i for i in range(100000))
        out = miniagent.truncate_text_by_tokens(text, 1000)
        self.assertIn("[Content truncated:", out)
        self.assertLess(len(out), len(text))
        self.assertEqual(miniagent.truncate_text_by_tokens("short", 1000), "short")


class WorkspacePromptTest(unittest.TestCase):
    def test_names_the_sandbox_workspace_once(self):
        p = miniagent.workspace_prompt("Be helpful.\n")
        self.assertTrue(p.startswith("Be helpful.\n\n## Current Workspace\n"))
        self.assertIn("You are currently working in: `/workspace`", p)
        self.assertIn("`/workspace/shared/outputs`", p)
        self.assertEqual(miniagent.workspace_prompt(p), p)  # a section is not added twice
        own = "X\n## Current Workspace\nmine"
        self.assertEqual(miniagent.workspace_prompt(own), own)


if __name__ == "__main__":
    unittest.main()
