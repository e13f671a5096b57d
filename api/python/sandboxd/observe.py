"""What a session uses and what happens in the daemon.

:class:`SessionStats` is the answer of ``GET /v1/sessions/{id}/stats``
(:meth:`sandboxd.Client.stats`); :class:`Event` is one line of
``GET /v1/events``, which :meth:`sandboxd.Client.events` returns as an
:class:`EventStream` to iterate.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator, Optional

from .errors import InternalError, SandboxdError
from .types import DiskUsage, Limits, _bool, _int, _Model, _obj, _opt_obj, _str, parse_time

__all__ = ["SessionStats", "Outcome", "Event", "EventStream", "EventsDropped"]

_CHUNK = 64 << 10
#: The most one event line may hold; a longer one is a broken stream.
_MAX_LINE = 1 << 20


@dataclass
class SessionStats(_Model):
    """What a session uses now and has done."""

    id: str = ""
    user_id: str = ""
    #: The session's status, as in :class:`~sandboxd.Session`.
    status: str = ""
    limits: Limits = field(default_factory=Limits)
    #: CPU time its processes used, and how long its CPU limit held them back.
    cpu_ms: int = 0
    cpu_throttled_ms: int = 0
    #: Memory it uses now (its /tmp included) and the most it used at once.
    memory_bytes: int = 0
    memory_peak_bytes: int = 0
    #: Its processes and threads now, and the most it may have.
    pids: int = 0
    pids_limit: int = 0
    #: Processes the kernel's OOM killer killed in it.
    oom_kills: int = 0
    #: Commands it ran (background processes included) since the daemon took it on.
    execs: int = 0
    #: Its background processes still running.
    processes: int = 0
    #: When a call in it last began or ended (reading stats does not count).
    last_activity: Optional[datetime] = None
    #: Its disk use against its quota; None while the daemon does not measure it.
    disk: Optional[DiskUsage] = None

    _CONVERT = {
        "id": ("id", _str),
        "user_id": ("user_id", _str),
        "status": ("status", _str),
        "limits": ("limits", _obj(Limits)),
        "cpu_ms": ("cpu_ms", _int),
        "cpu_throttled_ms": ("cpu_throttled_ms", _int),
        "memory_bytes": ("memory_bytes", _int),
        "memory_peak_bytes": ("memory_peak_bytes", _int),
        "pids": ("pids", _int),
        "pids_limit": ("pids_limit", _int),
        "oom_kills": ("oom_kills", _int),
        "execs": ("execs", _int),
        "processes": ("processes", _int),
        "last_activity": ("last_activity", parse_time),
        "disk": ("disk", _opt_obj(DiskUsage)),
    }


@dataclass
class Outcome(_Model):
    """How a command ended and what it used, as in :class:`~sandboxd.ExecResult`."""

    exit_code: int = 0
    signal: str = ""
    timed_out: bool = False
    oom_killed: bool = False
    duration_ms: int = 0
    cpu_ms: int = 0
    peak_memory_bytes: int = 0

    _CONVERT = {
        "exit_code": ("exit_code", _int),
        "signal": ("signal", _str),
        "timed_out": ("timed_out", _bool),
        "oom_killed": ("oom_killed", _bool),
        "duration_ms": ("duration_ms", _int),
        "cpu_ms": ("cpu_ms", _int),
        "peak_memory_bytes": ("peak_memory_bytes", _int),
    }


@dataclass
class Event(_Model):
    """One event of the daemon (see the README for every type and its fields).

    ``type`` is e.g. "session_created", "exec_timed_out", "oom_kill",
    "quota_exceeded" or "session_deleted"; skip types you do not know. ``seq``
    numbers the daemon's events in order.
    """

    seq: int = 0
    time: Optional[datetime] = None
    type: str = ""
    user_id: str = ""
    session_id: str = ""
    #: The background process of process_* and oom_kill events.
    process_id: str = ""
    #: The command line of a command's events (cut at 256 bytes).
    command: str = ""
    #: How a command or background process ended.
    outcome: Optional[Outcome] = None
    #: The quota of a quota_exceeded event.
    quota: str = ""
    #: The package of a package_* event.
    package: str = ""
    reason: str = ""

    _CONVERT = {
        "seq": ("seq", _int),
        "time": ("time", parse_time),
        "type": ("type", _str),
        "user_id": ("user_id", _str),
        "session_id": ("session_id", _str),
        "process_id": ("process_id", _str),
        "command": ("command", _str),
        "outcome": ("outcome", _opt_obj(Outcome)),
        "quota": ("quota", _str),
        "package": ("package", _str),
        "reason": ("reason", _str),
    }


class EventsDropped(SandboxdError):
    """The daemon dropped the event stream because the client fell behind:
    the events from ``event.seq`` on were not delivered. ``event`` is the
    daemon's last line."""

    def __init__(self, event: Event):
        super().__init__("the daemon dropped the event stream from event %d on: %s" % (event.seq, event.reason))
        self.event = event


class EventStream(Iterator[Event]):
    """The daemon's events as they happen; iterate it.

    The iteration ends when the daemon ends the stream (it stops), and raises
    :class:`EventsDropped` when the daemon dropped the client for falling
    behind. :meth:`close` (or leaving a ``with`` block) ends it; a socket
    timeout given to :meth:`sandboxd.Client.events` raises ``socket.timeout``
    (``TimeoutError``) from a read that waited that long, and ends it too.
    """

    def __init__(self, conn: Any, resp: http.client.HTTPResponse):
        self._conn = conn
        self._resp: Optional[http.client.HTTPResponse] = resp
        self._buf = b""

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if self._resp is None:
                    raise StopIteration
                if len(self._buf) > _MAX_LINE:
                    self.close()
                    raise InternalError("event stream: a line longer than %d bytes" % _MAX_LINE, status=0)
                try:
                    chunk = self._resp.read1(_CHUNK)
                except socket.timeout:
                    self.close()
                    raise
                except (OSError, ValueError, AttributeError, http.client.HTTPException) as e:
                    self.close()
                    raise InternalError("event stream broke: %s" % e, status=0) from e
                if not chunk:
                    self.close()  # the daemon ended the stream
                    raise StopIteration
                self._buf += chunk
                continue
            line, self._buf = self._buf[:nl], self._buf[nl + 1 :]
            if not line.strip():
                continue
            try:
                doc = json.loads(line.decode("utf-8"))
            except ValueError as e:
                self.close()
                raise InternalError("event stream: bad line %r: %s" % (line[:200], e), status=0) from e
            if not isinstance(doc, dict):
                continue
            ev = Event.from_dict(doc)
            if ev.type == "dropped":
                self.close()
                raise EventsDropped(ev)
            return ev

    def close(self) -> None:
        """Stop reading and close the connection. Closing twice is fine."""
        resp, conn = self._resp, self._conn
        self._resp, self._conn = None, None
        self._buf = b""
        if conn is not None:
            conn.shutdown()
        if resp is not None:
            try:
                resp.close()
            except OSError:
                pass

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
