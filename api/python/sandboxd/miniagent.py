r"""Mini-Agent tools that run in a sandboxd session.

Drop-in replacements for Mini-Agent's (MiniMax-AI/Mini-Agent) ``bash``,
``bash_output``, ``bash_kill``, ``read_file``, ``write_file`` and
``edit_file`` tools: same names, descriptions, parameter schemas, result
fields and result texts, but every command and file operation goes to one
sandboxd session instead of the backend's own machine. A chat backend swaps
them in by passing a session::

    import sandboxd, sandboxd.miniagent

    client = sandboxd.Client("/run/sandboxd.sock")
    session = client.create_session(user_id, conversation_id)
    agent = sandboxd.miniagent.new_agent(llm, client, session.id, prompt)
    # or: Agent(llm_client=llm, **sandboxd.miniagent.agent_kwargs(client, session.id, prompt))

:func:`new_agent` and :func:`agent_kwargs` give Mini-Agent's ``Agent`` the
six tools and a system prompt whose "Current Workspace" section names
``/workspace`` (:func:`workspace_prompt`); left to itself, ``Agent`` names
(and creates) a directory of the backend's host, which the sandbox refuses.

With Mini-Agent installed (``mini_agent`` importable) the tools subclass its
``Tool`` and the results its pydantic ``ToolResult`` and ``BashOutputResult``
(``model_dump``, ``model_dump_json``, ``model_copy``, ``isinstance`` all
work; :data:`MINI_AGENT` is True). Without it the module uses the standard
library only: the same fields on dataclasses with the same methods. Either
way ``metadata`` is this module's addition (Mini-Agent's ``ToolResult`` has
no such field): what the daemon said beyond the text the model reads. The
blocking client calls run in a worker thread (``asyncio.to_thread``).

Deliberate differences from Mini-Agent:

* A foreground command that times out is killed with its whole process tree
  (Mini-Agent kills only the shell, so its children live on). Cancelling the
  ``execute`` task closes the connection, and the daemon kills the command
  too. When a foreground command ends, whatever it left running is killed
  as well: a ``nohup … &`` child does not outlive it (use
  ``run_in_background``). A command ended by signal n reports exit code
  128+n, as a shell does (Mini-Agent reports -n).
* Output is bounded, and the model is told so: a foreground stream over
  1 MiB is cut with a ``[stdout truncated: …]`` note, and ``bash_output`` /
  ``bash_kill`` start with ``[N earlier output lines were dropped unread …]``
  when the daemon's bounded buffer dropped lines.
* Background shells belong to the session: ``bash_id`` is the daemon's
  process id (a string), a session runs 8 live background commands at most
  (the next one fails with the daemon's "quota exceeded" message), and their
  output lines lose their line ending: a ``\r`` before the ``\n`` is dropped
  too (Mini-Agent keeps it), and an endless line is cut into pieces.
  ``bash_kill`` stops the whole process tree (SIGTERM, then SIGKILL after
  5 s) and reports 128+n: **143** after SIGTERM where Mini-Agent reports
  -15, and **137** after the SIGKILL fallback, where Mini-Agent reports
  **0** (it does not wait for the killed process).
* ``bash_output``'s ``filter_str`` is applied by the daemon (RE2 syntax); a
  pattern the daemon refuses is applied here with Python's ``re`` instead,
  and one neither accepts returns every line, as Mini-Agent does.
* Paths are confined to the session: relative paths are taken from
  /workspace, absolute ones must be under /workspace (/workspace/shared is
  the user's shared files), and anything else (``/etc/passwd``, ``../x``) is
  refused with an error result. The daemon resolves them again so that no
  symlink leads out.
* ``edit_file`` refuses an ``old_str`` that occurs more than once (the error
  says how many times) instead of replacing every occurrence, as its
  description promises; an empty ``old_str`` is refused too.
* ``read_file`` and ``edit_file`` refuse binary or non-UTF-8 files with the
  daemon's message; files and commands' outputs are subject to the daemon's
  size limits.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import posixpath
import re
import tempfile
from typing import Any, Callable, Dict, Iterable, List, Optional, TypeVar

from .client import Client
from .errors import Conflict, InvalidArgument, NotFound, SandboxdError
from .types import ExecResult

try:  # Mini-Agent counts tokens with tiktoken when it is there.
    import tiktoken  # type: ignore
except Exception:  # pragma: no cover - optional
    tiktoken = None

# With Mini-Agent installed, the tools and results are its own classes'
# subclasses; without it, the module stays standard library only.
try:
    from mini_agent.tools.base import Tool as _MiniTool  # type: ignore
    from mini_agent.tools.base import ToolResult as _MiniToolResult  # type: ignore
except ImportError:
    _MiniTool = _MiniToolResult = None
try:
    from mini_agent.tools.bash_tool import BashOutputResult as _MiniBashOutputResult  # type: ignore
except ImportError:
    _MiniBashOutputResult = None

#: Whether Mini-Agent was importable: the tools are then subclasses of its
#: ``Tool`` and the results of its pydantic ``ToolResult`` (and
#: ``BashOutputResult``).
MINI_AGENT = _MiniTool is not None and _MiniToolResult is not None

__all__ = [
    "MINI_AGENT",
    "ToolResult",
    "BashOutputResult",
    "Tool",
    "SandboxTool",
    "BashTool",
    "BashOutputTool",
    "BashKillTool",
    "ReadTool",
    "WriteTool",
    "EditTool",
    "tools",
    "workspace_prompt",
    "agent_kwargs",
    "new_agent",
    "WORKSPACE",
    "WORKSPACE_SECTION",
    "truncate_text_by_tokens",
]

#: Where the session's files are inside the sandbox.
WORKSPACE = "/workspace"
#: Mini-Agent's limits on a foreground command's timeout.
DEFAULT_TIMEOUT = 120
MAX_TIMEOUT = 600
#: read_file output is truncated to this many tokens, as in Mini-Agent.
READ_MAX_TOKENS = 32000
#: The most of each stream a foreground command keeps (the daemon's cap).
OUTPUT_CAP = 1 << 20

R = TypeVar("R")


# -- results ----------------------------------------------------------------


def _bash_content(stdout: str, stderr: str, bash_id: Optional[str], exit_code: int) -> str:
    """Mini-Agent's BashOutputResult content: stdout, then the other fields
    when set, or "(no output)"."""
    output = ""
    if stdout:
        output += stdout
    if stderr:
        output += f"\n[stderr]:\n{stderr}"
    if bash_id:
        output += f"\n[bash_id]:\n{bash_id}"
    if exit_code:
        output += f"\n[exit_code]:\n{exit_code}"
    return output or "(no output)"


if MINI_AGENT:

    class ToolResult(_MiniToolResult):  # type: ignore[misc,valid-type]
        """Mini-Agent's ToolResult (this is its subclass) with ``metadata``
        added: what the daemon said beyond the text the model reads."""

        metadata: Optional[Dict[str, Any]] = None

    _bash_bases = (ToolResult,) if _MiniBashOutputResult is None else (_MiniBashOutputResult, ToolResult)

    class BashOutputResult(*_bash_bases):  # type: ignore[misc]
        """Mini-Agent's BashOutputResult (its subclass when Mini-Agent has
        one): ``content`` is always formatted from the other fields."""

        stdout: str = ""
        stderr: str = ""
        exit_code: int = 0
        bash_id: Optional[str] = None

        def __init__(self, **data: Any) -> None:
            data["content"] = _bash_content(
                data.get("stdout", ""), data.get("stderr", ""), data.get("bash_id"), data.get("exit_code", 0)
            )
            super().__init__(**data)

    Tool = _MiniTool

else:

    @dataclasses.dataclass
    class ToolResult:  # type: ignore[no-redef]
        """Mini-Agent's ToolResult: ``content`` is what the model sees on
        success, ``error`` what it sees (as "Error: ...") on failure;
        ``metadata`` is what the daemon said beyond that. pydantic's
        ``model_dump``, ``model_dump_json`` and ``model_copy`` are there
        for code written against Mini-Agent."""

        success: bool
        content: str = ""
        error: Optional[str] = None
        metadata: Optional[Dict[str, Any]] = None

        def model_dump(self) -> Dict[str, Any]:
            return dataclasses.asdict(self)

        def model_dump_json(self, indent: Optional[int] = None) -> str:
            return json.dumps(self.model_dump(), indent=indent)

        def model_copy(self, update: Optional[Dict[str, Any]] = None) -> "ToolResult":
            # As pydantic: the fields are copied, nothing is recomputed.
            dup = copy.copy(self)
            for k, v in (update or {}).items():
                setattr(dup, k, v)
            return dup

    @dataclasses.dataclass
    class BashOutputResult(ToolResult):  # type: ignore[no-redef]
        """Mini-Agent's BashOutputResult: ``content`` is always formatted from
        the other fields — stdout, then ``\\n[stderr]:\\n…``,
        ``\\n[bash_id]:\\n…`` and ``\\n[exit_code]:\\n…`` when set, or
        ``(no output)``."""

        stdout: str = ""
        stderr: str = ""
        exit_code: int = 0
        bash_id: Optional[str] = None

        def __post_init__(self) -> None:
            self.content = _bash_content(self.stdout, self.stderr, self.bash_id, self.exit_code)

    # -- tool base ----------------------------------------------------------

    class Tool:  # type: ignore[no-redef]
        """The shape of Mini-Agent's Tool base class."""

        @property
        def name(self) -> str:
            raise NotImplementedError

        @property
        def description(self) -> str:
            raise NotImplementedError

        @property
        def parameters(self) -> Dict[str, Any]:
            raise NotImplementedError

        async def execute(self, *args: Any, **kwargs: Any) -> ToolResult:
            raise NotImplementedError

        def to_schema(self) -> Dict[str, Any]:
            """Anthropic tool schema."""
            return {"name": self.name, "description": self.description, "input_schema": self.parameters}

        def to_openai_schema(self) -> Dict[str, Any]:
            """OpenAI tool schema."""
            return {
                "type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
            }


class SandboxTool(Tool):
    """A tool acting on one sandboxd session.

    Args:
        client: the :class:`sandboxd.Client` to use.
        session_id: the session commands and files go to.
    """

    def __init__(self, client: Client, session_id: str):
        self.client = client
        self.session_id = session_id

    def __repr__(self) -> str:
        return "%s(session_id=%r)" % (type(self).__name__, self.session_id)

    async def _call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a blocking client call in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _session_gone(self) -> bool:
        """After a NotFound: whether it was the session that is missing,
        rather than the file or process asked for."""
        try:
            await self._call(self.client.get_session, self.session_id)
        except NotFound:
            return True
        except Exception:
            return False
        return False

    async def _process_ids(self) -> Optional[List[str]]:
        """The session's background process ids; None when the session is gone."""
        try:
            return [p.id for p in await self._call(self.client.list_processes, self.session_id)]
        except NotFound:
            return None
        except Exception:
            return []


class PathRefused(ValueError):
    """A path that is not in the session's workspace."""


def _resolve(path: Any) -> str:
    """The sandbox path (/workspace/…) of a tool's path argument: relative
    paths are taken from /workspace, absolute ones must be under it."""
    if not isinstance(path, str) or not path:
        raise PathRefused(f"Invalid path: {path!r}")
    if "\x00" in path:
        raise PathRefused(f"Invalid path: {path!r}")
    full = path if path.startswith("/") else posixpath.join(WORKSPACE, path)
    full = posixpath.normpath(full)
    if full.startswith("//"):
        full = "/" + full.lstrip("/")
    if full != WORKSPACE and not full.startswith(WORKSPACE + "/"):
        raise PathRefused(
            f"Access denied: {path} is outside the session workspace; "
            f"use a path relative to {WORKSPACE} or under {WORKSPACE}/"
        )
    return full


def _err_text(e: BaseException) -> str:
    """An exception as the model should read it: the daemon's message
    without the HTTP status, anything else as str()."""
    if isinstance(e, SandboxdError):
        return e.message
    return str(e)


def _format_ids(ids: List[str]) -> str:
    return str(ids) if ids else "none"


# -- bash -------------------------------------------------------------------

_BASH_DESCRIPTION = """Execute bash commands in foreground or background.

For terminal operations like git, npm, docker, etc. DO NOT use for file operations - use specialized tools.

Parameters:
  - command (required): Bash command to execute
  - timeout (optional): Timeout in seconds (default: 120, max: 600) for foreground commands
  - run_in_background (optional): Set true for long-running commands (servers, etc.)

Tips:
  - Quote file paths with spaces: cd "My Documents"
  - Chain dependent commands with &&: git add . && git commit -m "msg"
  - Use absolute paths instead of cd when possible
  - For background commands, monitor with bash_output and terminate with bash_kill

Examples:
  - git status
  - npm test
  - python3 -m http.server 8080 (with run_in_background=true)"""


def _cut_note(stream: str) -> str:
    """What the model reads after a stream cut at OUTPUT_CAP: that the rest
    is missing, not that the command printed no more."""
    return f"\n[{stream} truncated: only the first {OUTPUT_CAP} bytes are shown; the rest was dropped]"


def _with_dropped(lines: List[str], dropped: int) -> str:
    """A background command's new lines, after a note counting the older
    ones the daemon's bounded buffer dropped unread (a model would
    otherwise take the gap for the whole output)."""
    text = "\n".join(lines) if lines else ""
    if dropped <= 0:
        return text
    note = (
        f"[{dropped} earlier output lines were dropped unread: the background output buffer is bounded; "
        "check bash_output more often or redirect the output to a file]"
    )
    return note + "\n" + text if text else note


def _clamp_timeout(timeout: Any) -> Any:
    """Mini-Agent's rule: above 600 → 600, below 1 → the default 120. A
    value that is not a number fails the comparison with Python's TypeError,
    as it does there, before anything runs."""
    if timeout > MAX_TIMEOUT:
        return MAX_TIMEOUT
    if timeout < 1:
        return DEFAULT_TIMEOUT
    return timeout


class BashTool(SandboxTool):
    """``bash``: run a shell command in the session, in the foreground (with
    a timeout; the whole process tree is killed at it) or in the background
    (``run_in_background``; its ``bash_id`` is the daemon's process id)."""

    @property
    def name(self) -> str:
        return "bash"

    @property
    def description(self) -> str:
        return _BASH_DESCRIPTION

    @property
    def parameters(self) -> Dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "command": {
                    "type": "string",
                    "description": "The bash command to execute. Quote file paths with spaces using double quotes.",
                },
                "timeout": {
                    "type": "integer",
                    "description": "Optional: Timeout in seconds (default: 120, max: 600). Only applies to foreground commands.",
                    "default": 120,
                },
                "run_in_background": {
                    "type": "boolean",
                    "description": "Optional: Set to true to run the command in the background. Use this for long-running commands like servers. You can monitor output using bash_output tool.",
                    "default": False,
                },
            },
            "required": ["command"],
        }

    async def execute(self, command: str, timeout: int = 120, run_in_background: bool = False) -> BashOutputResult:
        """Run ``command``; see the class docstring."""
        try:
            timeout = _clamp_timeout(timeout)
            if run_in_background:
                proc = await self._call(self.client.start_process, self.session_id, command=command)
                bash_id = proc.id
                return BashOutputResult(
                    success=True,
                    stdout=f"Background command started with ID: {bash_id}",
                    stderr="",
                    exit_code=0,
                    bash_id=bash_id,
                    metadata={"pid": proc.pid, "command": command},
                )

            res, stdout, stderr = await self._run_foreground(command, timeout)
            meta = {
                "exit_code": res.exit_code,
                "signal": res.signal,
                "timed_out": res.timed_out,
                "oom_killed": res.oom_killed,
                "duration_ms": res.duration_ms,
                "stdout_truncated": res.stdout_truncated,
                "stderr_truncated": res.stderr_truncated,
            }
            if res.stdout_truncated:
                stdout += _cut_note("stdout")
            if res.stderr_truncated:
                stderr += _cut_note("stderr")
            if res.timed_out:
                error_msg = f"Command timed out after {timeout} seconds"
                meta["stdout"], meta["stderr"] = stdout, stderr
                return BashOutputResult(
                    success=False, error=error_msg, stdout="", stderr=error_msg, exit_code=-1, metadata=meta
                )
            is_success = res.exit_code == 0
            error_msg = None
            if not is_success:
                error_msg = f"Command failed with exit code {res.exit_code}"
                if stderr:
                    error_msg += f"\n{stderr.strip()}"
            return BashOutputResult(
                success=is_success,
                error=error_msg,
                stdout=stdout,
                stderr=stderr,
                exit_code=res.exit_code or 0,
                metadata=meta,
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return BashOutputResult(success=False, error=_err_text(e), stdout="", stderr=_err_text(e), exit_code=-1)

    async def _run_foreground(self, command: str, timeout: Any):
        """Run the command as a streamed exec in a worker thread, so that a
        cancelled task closes the connection and the daemon kills it."""
        aborts: List[Callable[[], None]] = []

        def run():
            stream = self.client.exec_stream(
                self.session_id, command=command, timeout=timeout, on_connect=aborts.append
            )
            out = bytearray()
            err = bytearray()
            out_cut = err_cut = False
            with stream:
                for ev in stream:
                    if ev.type == "stdout":
                        room = OUTPUT_CAP - len(out)
                        out_cut = out_cut or len(ev.data) > room
                        out += ev.data[: max(room, 0)]
                    elif ev.type == "stderr":
                        room = OUTPUT_CAP - len(err)
                        err_cut = err_cut or len(ev.data) > room
                        err += ev.data[: max(room, 0)]
                    elif ev.type == "error":
                        raise SandboxdError(ev.error or "exec failed", code=ev.code)
            res = stream.result or ExecResult()
            res.stdout_truncated = res.stdout_truncated or out_cut
            res.stderr_truncated = res.stderr_truncated or err_cut
            return (
                res,
                bytes(out).decode("utf-8", errors="replace"),
                bytes(err).decode("utf-8", errors="replace"),
            )

        try:
            return await asyncio.to_thread(run)
        except asyncio.CancelledError:
            for abort in aborts:
                abort()  # the daemon kills the command when the caller goes
            raise


# -- bash_output ------------------------------------------------------------

_BASH_OUTPUT_DESCRIPTION = """Retrieves output from a running or completed background bash shell.

        - Takes a bash_id parameter identifying the shell
        - Always returns only new output since the last check
        - Returns stdout and stderr output along with shell status
        - Supports optional regex filtering to show only lines matching a pattern
        - Use this tool when you need to monitor or check the output of a long-running shell
        - Shell IDs can be found using the bash tool with run_in_background=true

        Process status values:
          - "running": Still executing
          - "completed": Finished successfully
          - "failed": Finished with error
          - "terminated": Was terminated
          - "error": Error occurred

        Example: bash_output(bash_id="abc12345")"""


def _mini_status(status: str, exit_code: Optional[int]) -> str:
    """The daemon's process status in Mini-Agent's words."""
    if status == "running":
        return "running"
    if status == "killed":
        return "terminated"
    if status == "exited":
        return "completed" if exit_code == 0 else "failed"
    return status or "error"


class BashOutputTool(SandboxTool):
    """``bash_output``: the new output lines of a background command of the
    session (stdout and stderr merged), optionally filtered by a regex."""

    @property
    def name(self) -> str:
        return "bash_output"

    @property
    def description(self) -> str:
        return _BASH_OUTPUT_DESCRIPTION

    @property
    def parameters(self) -> Dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "bash_id": {
                    "type": "string",
                    "description": "The ID of the background shell to retrieve output from. Shell IDs are returned when starting a command with run_in_background=true.",
                },
                "filter_str": {
                    "type": "string",
                    "description": "Optional regular expression to filter the output lines. Only lines matching this regex will be included in the result. Any lines that do not match will no longer be available to read.",
                },
            },
            "required": ["bash_id"],
        }

    async def execute(self, bash_id: str, filter_str: Optional[str] = None) -> BashOutputResult:
        """Fetch ``bash_id``'s output not read before."""
        try:
            try:
                out = await self._call(self.client.process_output, self.session_id, bash_id, filter_str or None)
                lines = out.lines
            except InvalidArgument:
                if not filter_str:
                    raise
                # A pattern the daemon's RE2 refuses: filter with Python's re,
                # or (if that fails too) return every line, as Mini-Agent does.
                out = await self._call(self.client.process_output, self.session_id, bash_id, None)
                lines = out.lines
                try:
                    pattern = re.compile(filter_str)
                    lines = [line for line in lines if pattern.search(line)]
                except re.error:
                    pass
            stdout = _with_dropped(lines, out.dropped)
            return BashOutputResult(
                success=True,
                stdout=stdout,
                stderr="",
                exit_code=out.exit_code if out.exit_code is not None else 0,
                bash_id=bash_id,
                metadata={
                    "status": _mini_status(out.status, out.exit_code),
                    "process_status": out.status,
                    "signal": out.signal,
                    "dropped": out.dropped,
                },
            )
        except NotFound as e:
            available_ids = await self._process_ids()
            if available_ids is None:  # the session itself is gone
                return BashOutputResult(
                    success=False, error=f"Failed to get bash output: {_err_text(e)}", stdout="", stderr=_err_text(e), exit_code=-1
                )
            return BashOutputResult(
                success=False,
                error=f"Shell not found: {bash_id}. Available: {_format_ids(available_ids)}",
                stdout="",
                stderr="",
                exit_code=-1,
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return BashOutputResult(
                success=False, error=f"Failed to get bash output: {_err_text(e)}", stdout="", stderr=_err_text(e), exit_code=-1
            )


# -- bash_kill --------------------------------------------------------------

_BASH_KILL_DESCRIPTION = """Kills a running background bash shell by its ID.

        - Takes a bash_id parameter identifying the shell to kill
        - Attempts graceful termination (SIGTERM) first, then forces (SIGKILL) if needed
        - Returns the final status and any remaining output before termination
        - Cleans up all resources associated with the shell
        - Use this tool when you need to terminate a long-running shell
        - Shell IDs can be found using the bash tool with run_in_background=true

        Example: bash_kill(bash_id="abc12345")"""


class BashKillTool(SandboxTool):
    """``bash_kill``: stop a background command of the session and its whole
    process tree (SIGTERM, SIGKILL after 5 s); its id is gone afterwards."""

    @property
    def name(self) -> str:
        return "bash_kill"

    @property
    def description(self) -> str:
        return _BASH_KILL_DESCRIPTION

    @property
    def parameters(self) -> Dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "bash_id": {
                    "type": "string",
                    "description": "The ID of the background shell to terminate. Shell IDs are returned when starting a command with run_in_background=true.",
                },
            },
            "required": ["bash_id"],
        }

    async def execute(self, bash_id: str) -> BashOutputResult:
        """Terminate ``bash_id``; the result carries its unread output and
        exit code (143 = 128+15 when SIGTERM ended it)."""
        try:
            out = await self._call(self.client.kill_process, self.session_id, bash_id)
            stdout = _with_dropped(out.lines, out.dropped)
            return BashOutputResult(
                success=True,
                stdout=stdout,
                stderr="",
                exit_code=out.exit_code if out.exit_code is not None else 0,
                bash_id=bash_id,
                metadata={"status": "terminated", "process_status": out.status, "signal": out.signal, "dropped": out.dropped},
            )
        except NotFound as e:
            available_ids = await self._process_ids()
            if available_ids is None:  # the session itself is gone
                return BashOutputResult(
                    success=False, error=f"Failed to terminate bash shell: {_err_text(e)}", stdout="", stderr=_err_text(e), exit_code=-1
                )
            msg = f"Shell not found: {bash_id}"
            return BashOutputResult(
                success=False,
                error=f"{msg}. Available: {_format_ids(available_ids)}",
                stdout="",
                stderr=msg,
                exit_code=-1,
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return BashOutputResult(
                success=False, error=f"Failed to terminate bash shell: {_err_text(e)}", stdout="", stderr=_err_text(e), exit_code=-1
            )


# -- files ------------------------------------------------------------------


def truncate_text_by_tokens(text: str, max_tokens: int) -> str:
    """Mini-Agent's truncation: keep the head and the tail of a text over
    ``max_tokens`` tokens (counted with tiktoken when installed, else as
    4 characters a token), cut at line boundaries, with a note between."""
    try:
        if tiktoken is not None:
            encoding = tiktoken.get_encoding("cl100k_base")
            token_count = len(encoding.encode(text))
        else:
            raise RuntimeError("tiktoken not available")
    except Exception:
        token_count = int(len(text) / 4)
    if token_count <= max_tokens:
        return text
    char_count = max(1, len(text))
    ratio = token_count / char_count if token_count else 1.0
    chars_per_half = int((max_tokens / 2) / ratio * 0.95)
    head_part = text[:chars_per_half]
    last_newline_head = head_part.rfind("\n")
    if last_newline_head > 0:
        head_part = head_part[:last_newline_head]
    tail_part = text[-chars_per_half:]
    first_newline_tail = tail_part.find("\n")
    if first_newline_tail > 0:
        tail_part = tail_part[first_newline_tail + 1 :]
    truncation_note = f"\n\n... [Content truncated: {token_count} tokens -> ~{max_tokens} tokens limit] ...\n\n"
    return head_part + truncation_note + tail_part


def _is_index(v: Any) -> bool:
    return isinstance(v, int)


class ReadTool(SandboxTool):
    """``read_file``: lines of a text file of the session, numbered as
    ``{n:6d}|{line}``; ``offset`` is the first line (1-based), ``limit`` the
    number of lines."""

    @property
    def name(self) -> str:
        return "read_file"

    @property
    def description(self) -> str:
        return (
            "Read file contents from the filesystem. Output always includes line numbers "
            "in format 'LINE_NUMBER|LINE_CONTENT' (1-indexed). Supports reading partial content "
            "by specifying line offset and limit for large files. "
            "You can call this tool multiple times in parallel to read different files simultaneously."
        )

    @property
    def parameters(self) -> Dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "Absolute or relative path to the file",
                },
                "offset": {
                    "type": "integer",
                    "description": "Starting line number (1-indexed). Use for large files to read from specific line",
                },
                "limit": {
                    "type": "integer",
                    "description": "Number of lines to read. Use with offset for large files to read in chunks",
                },
            },
            "required": ["path"],
        }

    async def execute(self, path: str, offset: Optional[int] = None, limit: Optional[int] = None) -> ToolResult:
        """Read ``path``; see the class docstring."""
        try:
            full = _resolve(path)
            # Mini-Agent's arithmetic: lines[start:end] with start = offset-1
            # clamped at 0 and end = start+limit as it comes, so a negative
            # end counts from the end of the file. Its TypeErrors (offset
            # "2") are reported after the file is found, as there.
            bad: Optional[TypeError] = None
            start: Any = 0
            end: Any = None
            try:
                start = (offset - 1) if offset else 0
                end = (start + limit) if limit else None
                if start < 0:
                    start = 0
            except TypeError as e:
                bad = e
            # A window of non-negative int bounds is read as such; anything
            # else needs the whole file to be sliced here.
            window = bad is None and _is_index(start) and (end is None or (_is_index(end) and end >= 0))
            empty = window and end is not None and end <= start
            if bad is not None or empty:
                line, count = 1, 1  # the file must still be there and be text
            elif window:
                line, count = start + 1, (0 if end is None else end - start)
            else:
                line, count = 1, 0
            try:
                text = await self._call(self.client.read_text, self.session_id, full, line, count)
            except NotFound:
                if await self._session_gone():
                    raise
                return ToolResult(success=False, content="", error=f"File not found: {path}")
            if bad is not None:
                raise bad
            if empty:
                picked = []
            elif window:
                picked = text.lines
            else:
                picked = text.lines[start:end]  # Python's slice, TypeErrors included
            numbered = [f"{ln.n:6d}|{ln.text}" for ln in picked]
            content = truncate_text_by_tokens("\n".join(numbered), READ_MAX_TOKENS)
            return ToolResult(success=True, content=content, metadata={"total_lines": text.total_lines})
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return ToolResult(success=False, content="", error=_err_text(e))


class WriteTool(SandboxTool):
    """``write_file``: write a whole file of the session (parents created)."""

    @property
    def name(self) -> str:
        return "write_file"

    @property
    def description(self) -> str:
        return (
            "Write content to a file. Will overwrite existing files completely. "
            "For existing files, you should read the file first using read_file. "
            "Prefer editing existing files over creating new ones unless explicitly needed."
        )

    @property
    def parameters(self) -> Dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "Absolute or relative path to the file",
                },
                "content": {
                    "type": "string",
                    "description": "Complete content to write (will replace existing content)",
                },
            },
            "required": ["path", "content"],
        }

    async def execute(self, path: str, content: str) -> ToolResult:
        """Write ``content`` to ``path``."""
        try:
            full = _resolve(path)
            await self._call(self.client.write_file, self.session_id, full, content, None, True)
            return ToolResult(success=True, content=f"Successfully wrote to {full}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return ToolResult(success=False, content="", error=_err_text(e))


_OCCURS_RE = re.compile(r"occurs (\d+) times")


class EditTool(SandboxTool):
    """``edit_file``: replace the one occurrence of ``old_str`` by
    ``new_str``; an ambiguous ``old_str`` is refused."""

    @property
    def name(self) -> str:
        return "edit_file"

    @property
    def description(self) -> str:
        return (
            "Perform exact string replacement in a file. The old_str must match exactly "
            "and appear uniquely in the file, otherwise the operation will fail. "
            "You must read the file first before editing. Preserve exact indentation from the source."
        )

    @property
    def parameters(self) -> Dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "Absolute or relative path to the file",
                },
                "old_str": {
                    "type": "string",
                    "description": "Exact string to find and replace (must be unique in file)",
                },
                "new_str": {
                    "type": "string",
                    "description": "Replacement string (use for refactoring, renaming, etc.)",
                },
            },
            "required": ["path", "old_str", "new_str"],
        }

    async def execute(self, path: str, old_str: str, new_str: str) -> ToolResult:
        """Replace ``old_str`` by ``new_str`` in ``path``."""
        try:
            full = _resolve(path)
            try:
                await self._call(self.client.edit_file, self.session_id, full, old_str, new_str)
            except NotFound:
                if await self._session_gone():
                    raise
                return ToolResult(success=False, content="", error=f"File not found: {path}")
            except Conflict as e:
                m = _OCCURS_RE.search(e.message)
                n = int(m.group(1)) if m else None
                if n == 0:
                    return ToolResult(success=False, content="", error=f"Text not found in file: {old_str}")
                if n is not None:
                    return ToolResult(
                        success=False,
                        content="",
                        error=(
                            f"old_str occurs {n} times in {path}; it must be unique. "
                            "Include more surrounding context to select one occurrence."
                        ),
                    )
                raise
            return ToolResult(success=True, content=f"Successfully edited {full}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return ToolResult(success=False, content="", error=_err_text(e))


def tools(client: Client, session_id: str) -> List[SandboxTool]:
    """The six tools, bound to ``session_id``: bash, bash_output, bash_kill,
    read_file, write_file, edit_file."""
    return [
        BashTool(client, session_id),
        BashOutputTool(client, session_id),
        BashKillTool(client, session_id),
        ReadTool(client, session_id),
        WriteTool(client, session_id),
        EditTool(client, session_id),
    ]


# -- Mini-Agent's Agent -----------------------------------------------------

#: The system prompt section naming the sandbox's workspace. Mini-Agent's
#: Agent adds its own, naming the backend's host directory, unless the
#: prompt has a "Current Workspace" section already.
WORKSPACE_SECTION = (
    "## Current Workspace\n"
    f"You are currently working in: `{WORKSPACE}`\n"
    "All relative paths will be resolved relative to this directory.\n"
    f"The user's shared files are in `{WORKSPACE}/shared`; files kept from the user's "
    f"earlier sessions are in `{WORKSPACE}/shared/outputs`."
)


def workspace_prompt(system_prompt: str) -> str:
    """``system_prompt`` with a "Current Workspace" section naming the
    sandbox's /workspace, so that Mini-Agent's ``Agent`` does not add one
    naming the backend's own directory (a model using that absolute path
    would be refused). A prompt that has such a section is returned as it
    is: it is the caller's."""
    if "Current Workspace" in system_prompt:
        return system_prompt
    return system_prompt.rstrip("\n") + "\n\n" + WORKSPACE_SECTION


def agent_kwargs(
    client: Client,
    session_id: str,
    system_prompt: str,
    extra_tools: Iterable[Any] = (),
) -> Dict[str, Any]:
    """The arguments of Mini-Agent's ``Agent`` (besides ``llm_client``) for
    an agent working in session ``session_id``: the six sandboxed tools
    (then ``extra_tools``), the prompt of :func:`workspace_prompt`, and as
    ``workspace_dir`` the host's temporary directory — it exists already,
    so ``Agent`` creates nothing, and the prompt no longer names it::

        agent = Agent(llm_client=llm, **agent_kwargs(client, sid, prompt))
    """
    return {
        "system_prompt": workspace_prompt(system_prompt),
        "tools": [*tools(client, session_id), *extra_tools],
        "workspace_dir": tempfile.gettempdir(),
    }


def new_agent(
    llm_client: Any,
    client: Client,
    session_id: str,
    system_prompt: str,
    extra_tools: Iterable[Any] = (),
    **kwargs: Any,
) -> Any:
    """Mini-Agent's ``Agent`` built with :func:`agent_kwargs`; ``kwargs``
    (``max_steps``, ``token_limit``) go to it as they are. ImportError when
    Mini-Agent is not installed."""
    try:
        from mini_agent.agent import Agent  # type: ignore
    except ImportError as e:
        raise ImportError("new_agent needs Mini-Agent (the mini_agent package) installed: %s" % e) from e
    return Agent(llm_client=llm_client, **agent_kwargs(client, session_id, system_prompt, extra_tools), **kwargs)
