"""The agents the chat backend can run in a session.

An agent factory is called once per session, with the client and the
session, and returns a :class:`ChatAgent`: an object whose ``reply(message)``
coroutine runs one turn of the conversation in the sandbox and returns the
text for the user. The backend keeps one agent per live session, so a
conversation's later turns reach the same agent (and its history).

- :class:`MiniAgentFactory`: Mini-Agent's ``Agent``, built by
  ``sandboxd.miniagent.new_agent`` with the six sandboxed tools and a system
  prompt naming ``/workspace``; needs Mini-Agent and an LLM client.
- :class:`ScriptedAgentFactory`: a stand-in without a model, which runs a
  fixed series of tool calls through the same sandboxed tools — by default
  :func:`report_steps`: write a script, run it with python3, and so produce
  ``report.pdf`` from the message.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Protocol, Sequence, Tuple

import sandboxd
from sandboxd import miniagent

#: One tool call: the tool's name and its arguments.
Step = Tuple[str, Dict[str, Any]]

#: The system prompt of the Mini-Agent backend (the workspace section is
#: added by sandboxd.miniagent.workspace_prompt).
SYSTEM_PROMPT = (
    "You are a helpful assistant that works in a Linux sandbox with Python 3. "
    "Use the tools to write and run code. Documents the user should get back "
    "(.pdf, .xlsx, .pptx, .docx) go at the top of the workspace."
)


class ChatAgent(Protocol):
    async def reply(self, message: str) -> str:
        """Run one turn for ``message`` and return the answer."""
        ...


AgentFactory = Callable[[sandboxd.Client, sandboxd.Session], ChatAgent]


class MiniAgentChat:
    """One Mini-Agent ``Agent`` for one session: each turn adds the user's
    message to its history and runs its loop."""

    def __init__(self, agent: Any):
        self.agent = agent

    async def reply(self, message: str) -> str:
        self.agent.add_user_message(message)
        return await self.agent.run()


class MiniAgentFactory:
    """Mini-Agent's ``Agent`` per session.

    Args:
        llm_client: Mini-Agent's ``LLMClient`` (or anything with its
            ``generate(messages, tools)`` coroutine).
        system_prompt: the prompt before the workspace section.
        agent_options: more ``Agent`` arguments (``max_steps``, ``token_limit``).
    """

    def __init__(self, llm_client: Any, system_prompt: str = SYSTEM_PROMPT, **agent_options: Any):
        self.llm_client = llm_client
        self.system_prompt = system_prompt
        self.agent_options = agent_options

    def __call__(self, client: sandboxd.Client, session: sandboxd.Session) -> ChatAgent:
        agent = miniagent.new_agent(self.llm_client, client, session.id, self.system_prompt, **self.agent_options)
        return MiniAgentChat(agent)


# The script the stand-in writes and runs: a document named report.pdf
# holding the request (text inside a PDF's comment lines, not a rendered
# page: the point is a produced file, not typesetting).
REPORT_SCRIPT = '''\
import sys

request = open(sys.argv[1], encoding="utf-8").read()
with open(sys.argv[2], "wb") as f:
    f.write(b"%PDF-1.4\\n% report of the scripted agent\\n")
    for line in request.splitlines():
        f.write(b"% " + line.encode("utf-8") + b"\\n")
    f.write(b"%%EOF\\n")
print("wrote", sys.argv[2])
'''


def report_steps(message: str) -> List[Step]:
    """The stand-in's default turn: save the message, write the report
    script, run it with python3 to make report.pdf."""
    return [
        ("write_file", {"path": "request.txt", "content": message}),
        ("write_file", {"path": "/workspace/make_report.py", "content": REPORT_SCRIPT}),
        ("bash", {"command": "python3 make_report.py request.txt report.pdf", "timeout": 60}),
    ]


class ScriptedAgent:
    """Runs ``steps(message)`` with the session's sandboxed tools, in order,
    and answers with what each tool returned as the model would read it
    (its content, or ``Error: …``), one line per step."""

    def __init__(self, tools: Sequence[Any], steps: Callable[[str], List[Step]]):
        self.tools = {t.name: t for t in tools}
        self.steps = steps

    async def reply(self, message: str) -> str:
        out = []
        for name, args in self.steps(message):
            result = await self.tools[name].execute(**args)
            out.append("%s: %s" % (name, result.content if result.success else "Error: %s" % result.error))
        return "\n".join(out)


class ScriptedAgentFactory:
    """A :class:`ScriptedAgent` per session (``steps`` defaults to
    :func:`report_steps`)."""

    def __init__(self, steps: Callable[[str], List[Step]] = report_steps):
        self.steps = steps

    def __call__(self, client: sandboxd.Client, session: sandboxd.Session) -> ChatAgent:
        return ScriptedAgent(miniagent.tools(client, session.id), self.steps)
