"""The reference chat backend (api/python/examples/chat_backend) end to end:
FastAPI's TestClient drives its three routes against a real daemon.

Skipped when FastAPI (and httpx, which its TestClient needs) cannot be
imported by this interpreter — on Debian they are python3-fastapi and
python3-httpx, seen by /usr/bin/python3.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import unittest

import _fixture
import _mini_agent
from _fixture import new_id

EXAMPLES = os.path.join(_fixture.PYROOT, "examples")
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

try:
    from fastapi.testclient import TestClient

    from chat_backend import MiniAgentFactory, ScriptedAgentFactory, create_app
    from chat_backend.agents import report_steps
    from chat_backend.app import content_disposition
except ImportError as e:  # FastAPI, httpx or uvicorn missing
    TestClient = None
    MISSING = "FastAPI's TestClient is not importable by %s (%s): on Debian, python3-fastapi and python3-httpx" % (
        sys.executable, e)

D = None


def setUpModule():
    global D
    if TestClient is None:
        raise unittest.SkipTest(MISSING)
    D = _fixture.start_daemon()


def tearDownModule():
    _fixture.stop_daemon(D)


def ls_outputs(message):
    """A turn that lists the user's kept outputs as the sandbox sees them."""
    return [("bash", {"command": "ls /workspace/shared/outputs && cat /workspace/shared/outputs/report.pdf"})]


def failing_factory(client, session):
    class Broken:
        async def reply(self, message):
            raise RuntimeError("the model is down")

    return Broken()


class BackendTestCase(unittest.TestCase):
    def make_factory(self):
        return ScriptedAgentFactory()

    def setUp(self):
        self.user = new_id("u")
        self.app = create_app(D.client, self.make_factory())
        self.http = TestClient(self.app)
        self.http.__enter__()  # one event loop for the whole test
        self.addCleanup(self.http.__exit__, None, None, None)
        self.addCleanup(self.delete_sessions)

    def delete_sessions(self):
        for s in D.client.list_sessions(self.user):
            D.client.delete_session(s.id)

    def chat(self, message, session_id=None, user=None, status=200):
        body = {"user_id": user or self.user, "message": message}
        if session_id is not None:
            body["session_id"] = session_id
        r = self.http.post("/api/chat", json=body)
        self.assertEqual(r.status_code, status, r.text)
        return r.json()


class ChatTest(BackendTestCase):
    def test_file_survives_into_the_next_session(self):
        # A new session, one turn: the script is written, run, report.pdf made.
        r = self.chat("Quarterly figures, please")
        sid = r["session_id"]
        self.assertTrue(sid)
        self.assertEqual(r["files"], ["make_report.py", "report.pdf", "request.txt"])
        self.assertIn("bash: wrote report.pdf", r["message"])
        self.assertEqual([s.id for s in D.client.list_sessions(self.user)], [sid])

        # The same session again: reused, and only what changed is listed.
        r2 = self.chat("Now for Q2", session_id=sid)
        self.assertEqual(r2["session_id"], sid)
        self.assertEqual(len(D.client.list_sessions(self.user)), 1)
        self.assertIn("report.pdf", r2["files"])

        # Not downloadable before the clean-up keeps it.
        self.assertEqual(self.http.get("/api/files/%s/report.pdf" % self.user).status_code, 404)
        d = self.http.delete("/api/sessions/%s/%s" % (self.user, sid))
        self.assertEqual(d.status_code, 200, d.text)
        self.assertEqual(d.json(), {"session_id": sid, "kept_files": ["report.pdf"]})
        self.assertEqual(D.client.list_sessions(self.user), [])

        f = self.http.get("/api/files/%s/report.pdf" % self.user)
        self.assertEqual(f.status_code, 200, f.text)
        self.assertEqual(f.headers["content-type"], "application/pdf")
        self.assertEqual(f.headers["content-disposition"], "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf")
        self.assertTrue(f.content.startswith(b"%PDF-1.4\n"))
        self.assertIn(b"% Now for Q2\n", f.content)
        self.assertEqual(self.http.get("/api/files/%s/make_report.py" % self.user).status_code, 404)
        self.assertEqual(self.http.get("/api/files/%s/report.pdf" % new_id("u")).status_code, 404)

        # The user's next session sees it at /workspace/shared/outputs.
        self.app.state.sessions.agent_factory = ScriptedAgentFactory(ls_outputs)
        r3 = self.chat("What did I get last time?")
        self.assertNotEqual(r3["session_id"], sid)
        self.assertIn("bash: report.pdf\n%PDF-1.4", r3["message"])
        self.assertIn("% Now for Q2", r3["message"])
        self.assertEqual(r3["files"], [])

    def test_named_session_is_created_then_reused(self):
        sid = new_id("conv")
        self.assertEqual(self.chat("hi", session_id=sid)["session_id"], sid)
        self.assertEqual(D.client.get_session(sid).user_id, self.user)
        self.assertEqual(self.chat("again", session_id=sid)["session_id"], sid)

    def test_quota_exceeded_is_429(self):
        user_dir = os.path.join(D.state, "workspaces", "user_" + self.user)
        os.makedirs(user_dir)
        with open(os.path.join(user_dir, "quota.json"), "w") as f:
            json.dump({"limits": {"max_sessions": 1}}, f)
        self.chat("first")
        r = self.http.post("/api/chat", json={"user_id": self.user, "message": "second"})
        self.assertEqual(r.status_code, 429, r.text)
        self.assertIn("quota exceeded", r.json()["detail"])

    def test_another_users_session_is_404(self):
        sid = self.chat("mine")["session_id"]
        other = new_id("u")
        self.chat("theirs?", session_id=sid, user=other, status=404)
        self.assertEqual(self.http.delete("/api/sessions/%s/%s" % (other, sid)).status_code, 404)
        self.assertEqual(D.client.get_session(sid).user_id, self.user)

    def test_bad_ids_and_unknown_sessions(self):
        self.chat("x", user="../etc", status=400)
        self.chat("x", session_id="a/b", status=400)
        self.assertEqual(self.http.delete("/api/sessions/%s/%s" % (self.user, new_id("none"))).status_code, 404)
        r = self.http.post("/api/chat", json={"user_id": self.user})
        self.assertEqual(r.status_code, 422)  # no message: FastAPI's validation


class FailingAgentTest(BackendTestCase):
    def make_factory(self):
        return failing_factory

    def test_agent_failure_is_500(self):
        r = self.http.post("/api/chat", json={"user_id": self.user, "message": "hello"})
        self.assertEqual(r.status_code, 500, r.text)
        self.assertIn("the model is down", r.json()["detail"])


class MiniAgentBackendTest(BackendTestCase):
    """The Mini-Agent path: its Agent (the stand-in of tests/fakes) with a
    scripted model, through the backend."""

    def setUp(self):
        stack = contextlib.ExitStack()
        self.addCleanup(stack.close)
        stack.enter_context(_mini_agent.mini_agent_importable(installed=True))
        self.llm = ScriptedLLM()
        super().setUp()

    def make_factory(self):
        return MiniAgentFactory(self.llm)

    def test_agent_runs_in_the_session(self):
        r = self.chat("Make a spreadsheet")
        self.assertEqual(r["message"], "Done: sheet.xlsx")
        self.assertEqual(r["files"], ["make.py", "sheet.xlsx"])
        prompt = self.llm.prompts[0]
        self.assertIn("You are currently working in: `/workspace`", prompt)
        self.assertEqual(self.llm.tool_answers[-1], "(no output)")
        # The same agent (and history) on the next turn.
        agent = self.app.state.sessions.agents[r["session_id"]]
        self.chat("Again", session_id=r["session_id"])
        self.assertIs(self.app.state.sessions.agents[r["session_id"]], agent)
        self.assertEqual(self.llm.user_messages, ["Make a spreadsheet", "Again"])


class ScriptedLLM:
    """A model for Mini-Agent's Agent: per user message, two tool calls
    with absolute /workspace paths, then an answer."""

    def __init__(self):
        self.prompts, self.tool_answers, self.user_messages = [], [], []
        self.step = 0

    async def generate(self, messages, tools=None):
        from types import SimpleNamespace as NS

        self.prompts.append(messages[0].content)
        self.user_messages = [m.content for m in messages if m.role == "user"]
        self.tool_answers = [m.content for m in messages if m.role == "tool"]
        last = messages[-1]
        if last.role == "user":
            call = ("write_file", {"path": "/workspace/make.py", "content": "open('/workspace/sheet.xlsx', 'w').write('x')\n"})
        elif last.role == "tool" and last.name == "write_file":
            call = ("bash", {"command": "python3 /workspace/make.py"})
        else:
            return NS(content="Done: sheet.xlsx", tool_calls=None)
        self.step += 1
        return NS(content="", tool_calls=[NS(id="c%d" % self.step, function=NS(name=call[0], arguments=call[1]))])


class UnitTest(unittest.TestCase):
    def test_content_disposition_quotes_odd_names(self):
        self.assertEqual(content_disposition('ré"port.pdf'), "attachment; filename*=UTF-8''r%C3%A9%22port.pdf")


    def test_report_steps_use_the_message(self):
        steps = report_steps("hello")
        self.assertEqual([name for name, _ in steps], ["write_file", "write_file", "bash"])
        self.assertEqual(steps[0][1], {"path": "request.txt", "content": "hello"})


if __name__ == "__main__":
    unittest.main()
