"""The design's chat backend: three routes over sandboxd, in FastAPI.

- ``POST /api/chat {user_id, session_id?, message}`` → ``{session_id,
  message, files}``: reuses the user's session ``session_id`` (creating it
  under that id when it does not exist, or under a new id when none is
  given), runs one agent turn in it, and lists the workspace files the turn
  created or changed. 429 when the user's session quota is used up, 400 for
  ids the daemon refuses, 404 for another user's session, 500 for any other
  failure.
- ``GET /api/files/{user_id}/{filename}``: a file kept in the user's
  ``shared_files/outputs/`` (404 if absent), as an attachment.
- ``DELETE /api/sessions/{user_id}/{session_id}`` → ``{session_id,
  kept_files}``: deletes the session, its documents (.pdf .xlsx .pptx .docx
  at the top of the workspace) first moved to ``outputs/``, where the next
  sessions of that user see them at ``/workspace/shared/outputs``.

The blocking client calls run in worker threads; turns of one session run
one at a time, since an agent keeps one conversation.
"""

import asyncio
import contextlib
import logging
import mimetypes
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel

import sandboxd

from .agents import AgentFactory, ChatAgent

log = logging.getLogger("chat_backend")


class ChatRequest(BaseModel):
    user_id: str
    session_id: Optional[str] = None
    message: str


class ChatResponse(BaseModel):
    session_id: str
    message: str
    #: Workspace paths (relative to /workspace) the turn created or changed.
    files: List[str]


class CleanupResponse(BaseModel):
    session_id: str
    #: The names the session's documents got in the user's outputs/.
    kept_files: List[str]


class NotYours(Exception):
    """The session exists but belongs to another user."""


#: A workspace file's size and mtime, to tell what a turn changed.
Snapshot = Dict[str, Tuple[int, object]]


def snapshot(client: sandboxd.Client, session_id: str) -> Snapshot:
    """The session's workspace files, the user's shared files left out."""
    listing = client.list_files(session_id, recursive=True)
    return {
        e.path: (e.size, e.mtime)
        for e in listing.entries
        if e.type == "file" and e.path != "shared" and not e.path.startswith("shared/")
    }


class Sessions:
    """The live sessions' agents and turn locks, and the session lookups."""

    def __init__(self, client: sandboxd.Client, agent_factory: AgentFactory):
        self.client = client
        self.agent_factory = agent_factory
        self.agents: Dict[str, ChatAgent] = {}
        self.locks: Dict[str, asyncio.Lock] = {}

    async def owned(self, user_id: str, session_id: str) -> sandboxd.Session:
        """The session, if it is the user's (NotFound, NotYours otherwise)."""
        s = await asyncio.to_thread(self.client.get_session, session_id)
        if s.user_id != user_id:
            raise NotYours(session_id)
        return s

    async def open(self, user_id: str, session_id: Optional[str]) -> sandboxd.Session:
        """The user's session ``session_id``, created when missing (under a
        new id when None)."""
        if session_id is None:
            return await asyncio.to_thread(self.client.create_session, user_id)
        try:
            return await self.owned(user_id, session_id)
        except sandboxd.NotFound:
            pass
        self.agents.pop(session_id, None)  # a session deleted behind our back
        try:
            return await asyncio.to_thread(self.client.create_session, user_id, session_id)
        except sandboxd.AlreadyExists:  # created meanwhile by another request
            return await self.owned(user_id, session_id)

    def lock(self, session_id: str) -> asyncio.Lock:
        return self.locks.setdefault(session_id, asyncio.Lock())

    def agent(self, session: sandboxd.Session) -> ChatAgent:
        if session.id not in self.agents:
            self.agents[session.id] = self.agent_factory(self.client, session)
        return self.agents[session.id]

    def forget(self, session_id: str) -> None:
        self.agents.pop(session_id, None)
        self.locks.pop(session_id, None)


@contextlib.contextmanager
def http_errors(what: str):
    """The daemon's refusals as the routes' statuses; anything else is a 500."""
    try:
        yield
    except HTTPException:
        raise
    except sandboxd.QuotaExceeded as e:
        raise HTTPException(429, e.message) from e
    except sandboxd.InvalidArgument as e:
        raise HTTPException(400, e.message) from e
    except (sandboxd.NotFound, NotYours) as e:
        raise HTTPException(404, "%s: not found" % what) from e
    except Exception as e:
        log.exception("%s failed", what)
        raise HTTPException(500, "%s failed: %s" % (what, e)) from e


def content_disposition(filename: str) -> str:
    """An attachment header naming the file: RFC 6266's plain ``filename``
    when the name is printable ASCII without quotes, and ``filename*``
    (RFC 5987, UTF-8) always."""
    plain = filename.isascii() and filename.isprintable() and not set('"\\') & set(filename)
    fallback = 'filename="%s"; ' % filename if plain else ""
    return "attachment; %sfilename*=UTF-8''%s" % (fallback, quote(filename, safe=""))


def create_app(client: sandboxd.Client, agent_factory: AgentFactory) -> FastAPI:
    """The backend for the daemon behind ``client``, running the agents
    ``agent_factory`` makes (see :mod:`chat_backend.agents`)."""
    app = FastAPI(title="sandboxd reference chat backend")
    sessions = Sessions(client, agent_factory)
    app.state.sessions = sessions

    @app.post("/api/chat", response_model=ChatResponse)
    async def chat(req: ChatRequest) -> ChatResponse:
        with http_errors("session %s of user %s" % (req.session_id or "(new)", req.user_id)):
            session = await sessions.open(req.user_id, req.session_id)
        # A failure in the turn is the backend's, whatever the daemon said.
        async with sessions.lock(session.id):
            try:
                agent = sessions.agent(session)
                before = await asyncio.to_thread(snapshot, client, session.id)
                answer = await agent.reply(req.message)
                after = await asyncio.to_thread(snapshot, client, session.id)
            except sandboxd.QuotaExceeded as e:
                raise HTTPException(429, e.message) from e
            except Exception as e:
                log.exception("chat turn in session %s failed", session.id)
                raise HTTPException(500, "the agent failed: %s" % e) from e
        files = sorted(p for p, v in after.items() if before.get(p) != v)
        return ChatResponse(session_id=session.id, message=answer, files=files)

    @app.get("/api/files/{user_id}/{filename}")
    async def download(user_id: str, filename: str) -> Response:
        with http_errors("file %s of user %s" % (filename, user_id)):
            data = await asyncio.to_thread(client.download_output, user_id, filename)
        return Response(
            content=data,
            media_type=mimetypes.guess_type(filename)[0] or "application/octet-stream",
            headers={"Content-Disposition": content_disposition(filename)},
        )

    @app.delete("/api/sessions/{user_id}/{session_id}", response_model=CleanupResponse)
    async def cleanup(user_id: str, session_id: str) -> CleanupResponse:
        with http_errors("session %s of user %s" % (session_id, user_id)):
            await sessions.owned(user_id, session_id)
            async with sessions.lock(session_id):
                res = await asyncio.to_thread(client.delete_session, session_id, True)
        sessions.forget(session_id)
        return CleanupResponse(session_id=session_id, kept_files=res.kept_files)

    return app
