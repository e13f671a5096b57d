"""A client for sandboxd's HTTP/JSON API on its Unix socket.

Only the standard library is used. Each request opens its own connection, so
one :class:`Client` may be shared by any number of threads.

Example::

    from sandboxd import Client

    c = Client("/run/sandboxd.sock")
    s = c.create_session("alice", "chat1")
    print(c.exec(s.id, command="echo hi").stdout)
    c.delete_session(s.id, keep_files=True)
"""

from __future__ import annotations

import http.client
import io
import json
import os
import select
import socket
import stat as stat_mod
from datetime import timedelta
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import quote, urlencode

from .errors import InternalError, error_from_response
from .observe import EventStream, SessionStats
from .types import (
    DeleteSessionResult,
    EditResult,
    ExecEvent,
    ExecResult,
    FileInfo,
    FileList,
    Env,
    Info,
    InstallPackagesResult,
    Limits,
    PackageEvent,
    Process,
    ProcessOutput,
    Session,
    SessionPackages,
    TextFile,
    User,
    WriteResult,
)

__all__ = ["Client", "ExecStream", "PackageStream", "API_VERSION", "NDJSON"]

#: The API version every route is prefixed with.
API_VERSION = "v1"
#: The media type of a streamed exec.
NDJSON = "application/x-ndjson"

#: The daemon's default exec timeout, in seconds, used to size the socket
#: timeout of an exec call when the Client has one.
_DEFAULT_EXEC_TIMEOUT = 30.0
#: The most of a non-JSON error body that is kept.
_MAX_ERROR_BODY = 64 << 10
_CHUNK = 64 << 10

#: The event types a stream yields; others are skipped.
_EVENT_TYPES = frozenset(("stdout", "stderr", "exit", "error"))

Body = Union[bytes, bytearray, memoryview, str, IO[bytes], IO[str]]
QueryValue = Union[str, int, float, bool, None]


class _SendStopped(Exception):
    """The daemon answered, or hung up, before the request body was all
    sent: the caller stops sending and reads the answer."""

    def __init__(self, cause: Optional[OSError]):
        super().__init__("the daemon answered before the request body was sent")
        self.cause = cause


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection that dials a Unix socket; the host is never resolved."""

    def __init__(self, socket_path: str, timeout: Optional[float]):
        super().__init__("sandboxd", timeout=timeout)
        self._socket_path = socket_path
        #: The connected socket, kept so that close() can shut it down even
        #: after http.client handed it over to a response.
        self.raw_sock: Optional[socket.socket] = None
        self.aborted = False

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.raw_sock = sock
        if self.aborted:
            self.abort()
            raise ConnectionAbortedError("request aborted")

    def send(self, data: Any) -> None:
        """Send request bytes a chunk at a time, stopping as soon as the
        daemon has something to say: it refuses an upload (a bad path, a
        quota) before reading the body and then closes the connection, and
        its answer is what the caller needs, not EPIPE."""
        if self.sock is None or hasattr(data, "read"):
            super().send(data)
            return
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _CHUNK):
            if self._answered():
                raise _SendStopped(None)
            try:
                self.sock.sendall(view[start : start + _CHUNK])
            except (BrokenPipeError, ConnectionResetError) as e:
                raise _SendStopped(e) from e

    def _answered(self) -> bool:
        """Whether the daemon has sent something (or closed) already."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def abort(self) -> None:
        """Shut the socket down (from any thread): a request or response in
        progress fails, and the daemon sees the caller go away."""
        self.aborted = True
        sock = self.raw_sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def shutdown(self) -> None:
        """Close the connection so that the daemon sees it go at once."""
        sock = self.raw_sock
        self.raw_sock = None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.close()
        if sock is not None:
            sock.close()


def _bool_param(v: bool) -> str:
    return "true" if v else "false"


def _encode_query(query: Optional[Mapping[str, QueryValue]]) -> str:
    if not query:
        return ""
    items: List[Tuple[str, str]] = []
    for k, v in query.items():
        if v is None:
            continue
        if isinstance(v, bool):
            items.append((k, _bool_param(v)))
        else:
            items.append((k, str(v)))
    if not items:
        return ""
    return "?" + urlencode(items, quote_via=quote, safe="")


def _seg(value: str) -> str:
    """One path segment, escaped so that "/", "?", "%" and the like stay in it."""
    return quote(str(value), safe="")


def _go_duration(grace: Union[float, int, str, timedelta]) -> str:
    """A grace period in Go's time.ParseDuration syntax."""
    if isinstance(grace, str):
        return grace
    if isinstance(grace, timedelta):
        seconds = grace.total_seconds()
    else:
        seconds = float(grace)
    if seconds < 0:
        raise ValueError("grace must not be negative")
    return "%dms" % int(round(seconds * 1000))


def _body_length(f: Any) -> Optional[int]:
    """The bytes left in a binary file-like object, when that can be known."""
    try:
        st = os.fstat(f.fileno())
        if stat_mod.S_ISREG(st.st_mode):
            return max(st.st_size - f.tell(), 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    if isinstance(f, io.BytesIO):
        return max(len(f.getbuffer()) - f.tell(), 0)
    try:
        if f.seekable():
            pos = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(pos)
            return max(end - pos, 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


def _text_chunks(f: Any) -> Iterator[bytes]:
    """A text file-like object's content, UTF-8 encoded, chunk by chunk."""
    while True:
        s = f.read(_CHUNK)
        if not s:
            return
        yield s.encode("utf-8") if isinstance(s, str) else bytes(s)


def _is_text_io(f: Any) -> bool:
    if isinstance(f, io.TextIOBase):
        return True
    mode = getattr(f, "mode", None)
    return isinstance(mode, str) and "b" not in mode and hasattr(f, "encoding")


def _result_events(res: ExecResult) -> List[ExecEvent]:
    """The events a stream would have carried for a complete result."""
    events: List[ExecEvent] = []
    if res.stdout:
        events.append(ExecEvent(type="stdout", data=res.stdout.encode("utf-8")))
    if res.stderr:
        events.append(ExecEvent(type="stderr", data=res.stderr.encode("utf-8")))
    exit_res = ExecResult.from_dict(res.to_dict())
    exit_res.stdout = exit_res.stderr = ""
    events.append(ExecEvent(type="exit", result=exit_res))
    return events


class ExecStream(Iterator[ExecEvent]):
    """The events of a streamed exec, read as they arrive.

    Iterate it (or call ``next``) to get :class:`ExecEvent` objects: "stdout"
    and "stderr" chunks (``event.data`` is bytes), then one "exit" event with
    the result — also kept in :attr:`result` — or one "error" event if the
    command failed after the stream began. The iteration ends after that.
    Event types this client does not know are skipped.

    :meth:`close` (or leaving a ``with`` block, or dropping the object) closes
    the connection, and the daemon then kills the command and everything it
    started. A stream that breaks before its last event raises
    :class:`InternalError`.
    """

    #: What the stream's lines are read as, which types it yields, and the
    #: type of its last event on success.
    _EVENT: Any = ExecEvent
    _TYPES = _EVENT_TYPES
    _FINAL = "exit"

    def __init__(
        self,
        conn: Optional[_UnixHTTPConnection],
        resp: Optional[http.client.HTTPResponse],
        events: Optional[List[ExecEvent]] = None,
    ):
        self._conn: Optional[_UnixHTTPConnection] = conn
        self._resp: Optional[http.client.HTTPResponse] = resp
        self._buf = b""
        self._pos = 0  # where the unparsed part of _buf begins
        self._finished = False
        # Events known up front (a daemon without streaming answered the
        # whole result at once).
        self._pending: Optional[List[ExecEvent]] = list(events) if events is not None else None
        #: The result of the exit event, once it has arrived.
        self.result: Optional[ExecResult] = None
        #: The error event, if the stream ended with one.
        self.error_event: Optional[ExecEvent] = None

    def __iter__(self) -> "ExecStream":
        return self

    def __next__(self) -> ExecEvent:
        if self._pending is not None:
            if self._finished or not self._pending:
                self._finished = True
                raise StopIteration
            ev = self._pending.pop(0)
            if ev.type == "exit":
                self.result = ev.result
                self._finished = True
            return ev
        while not self._finished:
            nl = self._buf.find(b"\n", self._pos)
            if nl >= 0:
                line = self._buf[self._pos : nl]
                self._pos = nl + 1
            elif self._resp is not None:
                try:
                    chunk = self._resp.read1(_CHUNK)
                except (OSError, ValueError, AttributeError, http.client.HTTPException) as e:
                    # ValueError/AttributeError: abort() closed it under us.
                    self.close()
                    raise InternalError("exec stream broke: %s" % e, status=0) from e
                if chunk:
                    self._buf = self._buf[self._pos :] + chunk
                    self._pos = 0
                else:
                    self._close_conn()  # end of the body
                continue
            elif self._buf[self._pos :].strip():
                line = self._buf[self._pos :]  # a last line without its newline
                self._buf, self._pos = b"", 0
            else:
                self.close()
                raise InternalError("stream ended before its %s event" % self._FINAL, status=0)
            if not line.strip():
                continue
            try:
                doc = json.loads(line.decode("utf-8"))
            except ValueError as e:
                self.close()
                raise InternalError("exec stream: bad event line %r: %s" % (line[:200], e), status=0) from e
            if not isinstance(doc, dict):
                continue
            ev = self._EVENT.from_dict(doc)
            if ev.type not in self._TYPES:
                continue  # a newer daemon's event: skipped, as the API asks
            if ev.type == self._FINAL:
                self._finish(ev)
                self.close()
            elif ev.type == "error":
                self.error_event = ev
                self.close()
            return ev
        raise StopIteration

    def _finish(self, ev: Any) -> None:
        self.result = ev.result if ev.result is not None else ExecResult()

    def _close_conn(self) -> None:
        resp, conn = self._resp, self._conn
        self._resp = None
        self._conn = None
        if conn is not None:
            conn.shutdown()
        if resp is not None:
            try:
                resp.close()
            except OSError:
                pass

    def abort(self) -> None:
        """Shut the connection down without touching the reader: safe to call
        from another thread while one is blocked reading this stream (that
        reader then gets an InternalError). The daemon kills the command."""
        conn = self._conn
        if conn is not None:
            conn.abort()

    def close(self) -> None:
        """Stop reading and close the connection; a command still running is
        killed by the daemon. Closing twice is fine."""
        self._finished = True
        self._buf, self._pos = b"", 0
        self._close_conn()

    def __enter__(self) -> "ExecStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class PackageStream(ExecStream):
    """The events of a streamed install, read as they arrive: pip's "stdout"
    and "stderr" output (``event.data`` is bytes), then one "installed"
    event with the :class:`InstallPackagesResult` — also kept in
    :attr:`result` — or one "error" event. Closing it early closes the
    connection, and the daemon stops the install."""

    _EVENT = PackageEvent
    _TYPES = frozenset(("stdout", "stderr", "installed", "error"))
    _FINAL = "installed"

    def _finish(self, ev: Any) -> None:
        self.result = ev.install if ev.install is not None else InstallPackagesResult()  # type: ignore[assignment]


class Client:
    """A client for the sandboxd daemon listening on ``socket_path``.

    Args:
        socket_path: the daemon's Unix socket, e.g. ``/run/sandboxd.sock``.
        timeout: socket timeout in seconds for each request, None (the
            default) for none: the daemon bounds commands by their own
            timeout. An exec call's socket timeout is this plus the
            command's timeout.

    Every method raises a :class:`~sandboxd.errors.SandboxdError` subclass
    (``NotFound``, ``InvalidArgument``, …) when the daemon refuses the
    request, and OSError when the socket cannot be reached. Path and query
    values are URL-encoded. The client is thread-safe: each request has its
    own connection.
    """

    def __init__(self, socket_path: str, timeout: Optional[float] = None):
        self.socket_path = socket_path
        self.timeout = timeout

    def __repr__(self) -> str:
        return "Client(%r)" % self.socket_path

    # -- plumbing ---------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, QueryValue]] = None,
        json_body: Any = None,
        body: Any = None,
        headers: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
        use_timeout: bool = False,
        on_connect: Optional[Callable[[Callable[[], None]], None]] = None,
    ) -> Tuple[_UnixHTTPConnection, http.client.HTTPResponse]:
        """Send one request and return the connection and the response, whose
        status the caller checks; the caller closes the connection."""
        conn = _UnixHTTPConnection(self.socket_path, timeout if use_timeout else self.timeout)
        if on_connect is not None:
            on_connect(conn.abort)
        hdrs = {"Accept": "application/json", "Connection": "close"}
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        url = "/" + API_VERSION + path + _encode_query(query)
        try:
            try:
                conn.request(method, url, body=body, headers=hdrs)
            except _SendStopped as stopped:
                resp = self._early_answer(conn, stopped)
            else:
                resp = conn.getresponse()
        except BaseException:
            conn.shutdown()
            raise
        return conn, resp

    @staticmethod
    def _early_answer(conn: _UnixHTTPConnection, stopped: _SendStopped) -> http.client.HTTPResponse:
        """The answer the daemon gave before the body was all sent: a refusal
        (its error envelope), never a success."""
        try:
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            if stopped.cause is not None:
                raise stopped.cause from e  # hung up without an answer
            raise
        if 200 <= resp.status <= 299:
            raise InternalError("the daemon answered %d before the request body was sent" % resp.status, status=resp.status)
        return resp

    @staticmethod
    def _raise_for(resp: http.client.HTTPResponse) -> None:
        if 200 <= resp.status <= 299:
            return
        try:
            data = resp.read(_MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException) as e:
            raise InternalError("read error response: %s" % e, status=resp.status) from e
        raise error_from_response(resp.status, data, resp.reason)

    def _call(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, QueryValue]] = None,
        json_body: Any = None,
        body: Any = None,
        headers: Optional[Dict[str, str]] = None,
        raw: bool = False,
        **kw: Any,
    ) -> Any:
        """One request; the decoded JSON answer, or the raw bytes with raw."""
        conn, resp = self._open(method, path, query, json_body, body, headers, **kw)
        try:
            self._raise_for(resp)
            data = resp.read()
        finally:
            conn.shutdown()
        if raw:
            return data
        if not data:
            return {}
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError as e:
            raise InternalError("%s %s: decode response: %s" % (method, path, e), status=resp.status) from e

    @staticmethod
    def _session(id: str) -> str:
        return "/sessions/" + _seg(id)

    def _exec_timeout(self, timeout: Optional[float]) -> Optional[float]:
        if self.timeout is None:
            return None
        return self.timeout + (timeout if timeout else _DEFAULT_EXEC_TIMEOUT)

    @staticmethod
    def _command_body(
        command: Optional[str],
        argv: Optional[Sequence[str]],
        cwd: Optional[str],
        env: Optional[Mapping[str, str]],
    ) -> Dict[str, Any]:
        if (command is None) == (argv is None):
            raise ValueError("give exactly one of command and argv")
        body: Dict[str, Any] = {}
        if argv is not None:
            if isinstance(argv, str):
                raise TypeError("argv is a sequence of strings, not a string")
            body["argv"] = list(argv)
        else:
            body["command"] = command
        if cwd:
            body["cwd"] = cwd
        if env:
            body["env"] = dict(env)
        return body

    # -- daemon and sessions ----------------------------------------------

    def info(self) -> Info:
        """The daemon's version, cgroup setup, limits and session count (GET /v1)."""
        return Info.from_dict(self._call("GET", ""))

    def create_session(
        self,
        user_id: str,
        session_id: Optional[str] = None,
        limits: Union[Limits, Mapping[str, Any], None] = None,
    ) -> Session:
        """Start a session for ``user_id``; the daemon picks an id when
        ``session_id`` is None. ``limits`` (a :class:`Limits` or a dict with
        cpus, memory_mb, pids, tmp_mb) overrides the defaults.

        Raises AlreadyExists for a taken id, InvalidArgument for a bad id,
        QuotaExceeded when the user has too many sessions.
        """
        body: Dict[str, Any] = {"user_id": user_id}
        if session_id is not None:
            body["session_id"] = session_id
        if limits is not None:
            body["limits"] = limits.to_json() if isinstance(limits, Limits) else dict(limits)
        return Session.from_dict(self._call("POST", "/sessions", json_body=body))

    def list_sessions(self, user_id: Optional[str] = None) -> List[Session]:
        """The live sessions, only ``user_id``'s when given."""
        doc = self._call("GET", "/sessions", {"user_id": user_id or None})
        return [Session.from_dict(s) for s in doc.get("sessions") or []]

    def get_session(self, id: str) -> Session:
        """Describe session ``id``; NotFound when there is none."""
        return Session.from_dict(self._call("GET", self._session(id)))

    def user(self, user_id: str) -> User:
        """Describe a user: their limits (quota.json over the daemon's
        defaults), their disk usage and their sessions; NotFound for a user
        the daemon never saw, InvalidQuota when their quota.json is broken."""
        return User.from_dict(self._call("GET", "/users/" + _seg(user_id)))

    def delete_session(self, id: str, keep_files: bool = False) -> DeleteSessionResult:
        """Stop and remove session ``id``. With ``keep_files`` its output
        documents (.pdf .xlsx .pptx .docx at the top of the workspace) are
        first moved to the user's shared_files/outputs/."""
        doc = self._call("DELETE", self._session(id), {"keep_files": bool(keep_files)})
        return DeleteSessionResult.from_dict(doc)

    # -- commands ---------------------------------------------------------

    def exec(
        self,
        id: str,
        command: Optional[str] = None,
        argv: Optional[Sequence[str]] = None,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """Run one command in session ``id`` and wait for it to end.

        Give exactly one of ``command`` (run with /bin/sh -c) and ``argv``.
        ``cwd`` defaults to /workspace; ``env`` adds variables; ``timeout``
        is in seconds (the daemon's default is 30, its cap 600). A failing,
        timed-out or killed command is not an exception: see the result's
        ``exit_code`` (128+n for signal n), ``timed_out`` and ``oom_killed``.
        """
        body = self._command_body(command, argv, cwd, env)
        if stdin:
            body["stdin"] = stdin
        if timeout:
            body["timeout"] = timeout
        doc = self._call(
            "POST", self._session(id) + "/exec", json_body=body,
            timeout=self._exec_timeout(timeout), use_timeout=True,
        )
        return ExecResult.from_dict(doc)

    def exec_stream(
        self,
        id: str,
        command: Optional[str] = None,
        argv: Optional[Sequence[str]] = None,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
        on_connect: Optional[Callable[[Callable[[], None]], None]] = None,
    ) -> ExecStream:
        """Run one command and return its events as they happen.

        Same arguments as :meth:`exec`. The request is sent at once, so a
        refused one (no such session, a bad argument) raises here; the
        returned :class:`ExecStream` then yields "stdout"/"stderr" events
        (``event.data`` is bytes, exact even when not UTF-8) and ends with
        an "exit" event carrying the result, or an "error" event. Closing the
        stream early closes the connection and the daemon kills the command.

        ``on_connect``, when given, is called at once with an ``abort()``
        function that another thread may call at any time — even before the
        answer begins — to close the connection and so cancel the command::

            with client.exec_stream(sid, command="make") as events:
                for ev in events:
                    if ev.type == "stdout":
                        sys.stdout.buffer.write(ev.data)
        """
        body = self._command_body(command, argv, cwd, env)
        if stdin:
            body["stdin"] = stdin
        if timeout:
            body["timeout"] = timeout
        conn, resp = self._open(
            "POST", self._session(id) + "/exec", json_body=body,
            headers={"Accept": NDJSON}, timeout=self._exec_timeout(timeout), use_timeout=True,
            on_connect=on_connect,
        )
        try:
            self._raise_for(resp)
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/json":
                # A daemon without streaming ran the command to its end and
                # answered the whole result: replay it as events.
                doc = json.loads(resp.read().decode("utf-8"))
                conn.shutdown()
                return ExecStream(None, None, _result_events(ExecResult.from_dict(doc)))
            if ctype != NDJSON:
                data = resp.read(_MAX_ERROR_BODY)
                raise InternalError(
                    "exec stream: the daemon answered %s, not %s: %s"
                    % (ctype or "no content type", NDJSON, data.decode("utf-8", "replace")[:500]),
                    status=resp.status,
                )
        except BaseException:
            conn.shutdown()
            raise
        return ExecStream(conn, resp)

    # -- packages ---------------------------------------------------------

    def install_packages(self, id: str, requirements: Sequence[str], timeout: Optional[float] = None) -> InstallPackagesResult:
        """Install PEP 508 ``requirements`` (``["pandas>=2,<3", "requests"]``)
        into session ``id``'s own layer of /opt/venv, with the dependencies
        they need, offline, from the daemon's package cache and as its
        allow-list allows. Raises PackageNotAllowed (403) naming the package
        and the list's line, Conflict when the cache cannot satisfy a
        requirement, InvalidArgument for a malformed one. ``timeout``
        (seconds) sizes the socket timeout of a Client that has one."""
        if isinstance(requirements, str):
            raise TypeError("requirements is a sequence of strings, not a string")
        doc = self._call(
            "POST", self._session(id) + "/packages", json_body={"requirements": list(requirements)},
            timeout=self._exec_timeout(timeout), use_timeout=True,
        )
        return InstallPackagesResult.from_dict(doc)

    def install_packages_stream(
        self,
        id: str,
        requirements: Sequence[str],
        timeout: Optional[float] = None,
        on_connect: Optional[Callable[[Callable[[], None]], None]] = None,
    ) -> PackageStream:
        """Install like :meth:`install_packages`, returning pip's output as
        it comes: a :class:`PackageStream` of "stdout"/"stderr" events
        ending with an "installed" event (its ``install`` is the result, also
        in ``stream.result``) or an "error" event. A refusal before pip runs
        raises here. ``on_connect`` is as for :meth:`exec_stream`."""
        if isinstance(requirements, str):
            raise TypeError("requirements is a sequence of strings, not a string")
        conn, resp = self._open(
            "POST", self._session(id) + "/packages", json_body={"requirements": list(requirements)},
            headers={"Accept": NDJSON}, timeout=self._exec_timeout(timeout), use_timeout=True,
            on_connect=on_connect,
        )
        try:
            self._raise_for(resp)
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != NDJSON:
                data = resp.read(_MAX_ERROR_BODY)
                raise InternalError(
                    "install stream: the daemon answered %s, not %s: %s"
                    % (ctype or "no content type", NDJSON, data.decode("utf-8", "replace")[:500]),
                    status=resp.status,
                )
        except BaseException:
            conn.shutdown()
            raise
        return PackageStream(conn, resp)

    def list_packages(self, id: str) -> SessionPackages:
        """What session ``id`` has beyond its base environment."""
        return SessionPackages.from_dict(self._call("GET", self._session(id) + "/packages"))

    def list_envs(self) -> List[Env]:
        """The versions of the base environment, oldest first; the one new
        sessions get has ``current`` set."""
        doc = self._call("GET", "/envs")
        return [Env.from_dict(e) for e in doc.get("envs") or []]

    # -- background processes ---------------------------------------------

    def start_process(
        self,
        id: str,
        command: Optional[str] = None,
        argv: Optional[Sequence[str]] = None,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> Process:
        """Start a background process in session ``id`` (exactly one of
        ``command`` and ``argv``). Its ``id`` names it in the other process
        calls. QuotaExceeded when the session runs too many already."""
        body = self._command_body(command, argv, cwd, env)
        return Process.from_dict(self._call("POST", self._session(id) + "/processes", json_body=body))

    def list_processes(self, id: str) -> List[Process]:
        """The background processes of session ``id``."""
        doc = self._call("GET", self._session(id) + "/processes")
        return [Process.from_dict(p) for p in doc.get("processes") or []]

    def process_output(self, id: str, pid: str, filter: Optional[str] = None) -> ProcessOutput:
        """The output lines of background process ``pid`` (its ``id``) not
        read before, and its state. Each call moves the process's read
        cursor. With ``filter`` (an RE2 regular expression; invalid ones are
        InvalidArgument) only matching lines are returned — the others are
        consumed all the same."""
        doc = self._call(
            "GET", self._session(id) + "/processes/" + _seg(pid) + "/output",
            {"filter": filter if filter else None},
        )
        return ProcessOutput.from_dict(doc)

    def kill_process(
        self,
        id: str,
        pid: str,
        grace: Union[float, int, str, timedelta, None] = None,
    ) -> ProcessOutput:
        """Stop background process ``pid``: SIGTERM to its whole tree, SIGKILL
        after ``grace`` (seconds, a timedelta, or a Go duration string such
        as "500ms"; the daemon's default is 5 s). Returns the output not read
        before and the exit code (128+n for signal n: 143 after SIGTERM). The
        process is gone afterwards (NotFound)."""
        query = {"grace": _go_duration(grace) if grace is not None else None}
        doc = self._call("DELETE", self._session(id) + "/processes/" + _seg(pid), query)
        return ProcessOutput.from_dict(doc)

    # -- statistics and events --------------------------------------------

    def stats(self, id: str) -> SessionStats:
        """What session ``id`` uses now (CPU time used and throttled, memory
        now and at peak, processes) and has done (commands run, OOM kills,
        last activity). Reading it is not the session's activity."""
        return SessionStats.from_dict(self._call("GET", self._session(id) + "/stats"))

    def events(
        self,
        user_id: Optional[str] = None,
        session_id: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> EventStream:
        """The daemon's events from now on, only ``user_id``'s or session
        ``session_id``'s when given, as an :class:`EventStream` of
        :class:`~sandboxd.Event` to iterate. The request is sent at once and
        returns once the daemon has subscribed the client: nothing that
        happens after is missed. ``timeout`` bounds each wait for an event
        (None: wait for ever). Close the stream when done::

            with client.events(session_id=sid) as events:
                for ev in events:
                    print(ev.type, ev.command)
        """
        conn, resp = self._open(
            "GET", "/events", {"user_id": user_id or None, "session_id": session_id or None},
            headers={"Accept": NDJSON}, timeout=timeout, use_timeout=True,
        )
        try:
            self._raise_for(resp)
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != NDJSON:
                raise InternalError("events: the daemon answered %s, not %s" % (ctype or "no content type", NDJSON), status=resp.status)
        except BaseException:
            conn.shutdown()
            raise
        return EventStream(conn, resp)

    # -- files ------------------------------------------------------------
    #
    # Paths are relative to the root ("workspace", the default, is the
    # session's /workspace; "shared" is the user's shared files, also seen at
    # /workspace/shared), or absolute as the sandbox sees them. The daemon
    # resolves them so that they never leave their root.

    def _files(self, id: str, sub: str = "") -> str:
        return self._session(id) + "/files" + sub

    def list_files(self, id: str, path: str = "", root: Optional[str] = None, recursive: bool = False) -> FileList:
        """List a directory (the root by default), recursively with ``recursive``."""
        q = {"path": path, "root": root, "recursive": True if recursive else None}
        return FileList.from_dict(self._call("GET", self._files(id), q))

    def stat(self, id: str, path: str, root: Optional[str] = None) -> FileInfo:
        """Describe one entry without following a final symlink."""
        return FileInfo.from_dict(self._call("GET", self._files(id, "/stat"), {"path": path, "root": root}))

    def read_bytes(
        self,
        id: str,
        path: str,
        root: Optional[str] = None,
        offset: Optional[int] = None,
        length: Optional[int] = None,
    ) -> bytes:
        """A regular file's content, or ``length`` bytes (fewer at the end of
        the file) from ``offset``. An offset past the end is InvalidArgument;
        a file (or slice) over the daemon's size cap is TooLarge."""
        if (offset is not None and offset < 0) or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            return b""
        q = {"path": path, "root": root, "offset": offset or None, "length": length or None}
        return self._call("GET", self._files(id, "/content"), q, raw=True)

    def read_text(
        self,
        id: str,
        path: str,
        line: int = 1,
        limit: int = 0,
        root: Optional[str] = None,
    ) -> TextFile:
        """Lines ``line`` .. ``line+limit-1`` (numbered from 1; ``limit`` 0
        means to the end) of a UTF-8 text file, without line endings, and its
        line count. UnsupportedContent for a binary file."""
        q = {"path": path, "line": line, "limit": limit, "root": root}
        return TextFile.from_dict(self._call("GET", self._files(id, "/text"), q))

    def write_file(
        self,
        id: str,
        path: str,
        data: Body,
        root: Optional[str] = None,
        mkdirs: bool = True,
    ) -> WriteResult:
        """Store ``data`` at ``path`` atomically, replacing any file there.

        ``data`` is bytes, a str (written as UTF-8) or a file-like object,
        which is streamed: with a Content-Length when its size can be known
        (a regular file, BytesIO, a seekable stream), chunked otherwise.
        ``mkdirs`` creates missing parent directories.
        """
        headers = {"Content-Type": "application/octet-stream"}
        body: Any
        if isinstance(data, str):
            body = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            body = bytes(data)
        elif hasattr(data, "read"):
            if _is_text_io(data):
                body = _text_chunks(data)
            else:
                body = data
                n = _body_length(data)
                if n is not None:
                    headers["Content-Length"] = str(n)
        elif isinstance(data, Iterable):
            body = (bytes(c) if not isinstance(c, str) else c.encode("utf-8") for c in data)
        else:
            raise TypeError("data must be bytes, str or a file-like object, not %s" % type(data).__name__)
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        q = {"path": path, "root": root, "mkdirs": bool(mkdirs)}
        return WriteResult.from_dict(self._call("PUT", self._files(id, "/content"), q, body=body, headers=headers))

    def edit_file(
        self,
        id: str,
        path: str,
        old: str,
        new: str,
        count: Optional[int] = None,
        root: Optional[str] = None,
    ) -> EditResult:
        """Replace ``old`` by ``new`` in a text file. ``old`` must occur
        exactly once, or exactly ``count`` times when given; otherwise
        Conflict (its message says how many times it occurs)."""
        body: Dict[str, Any] = {"path": path, "old": old, "new": new}
        if count:
            body["count"] = count
        return EditResult.from_dict(self._call("POST", self._files(id, "/edit"), {"root": root}, json_body=body))

    def remove(self, id: str, path: str, recursive: bool = False, root: Optional[str] = None) -> None:
        """Remove a file, a symlink, an empty directory, or with ``recursive``
        a whole tree. Conflict for a directory that is not empty."""
        q = {"path": path, "recursive": True if recursive else None, "root": root}
        self._call("DELETE", self._files(id), q, raw=True)

    def mkdir(self, id: str, path: str, parents: bool = False, root: Optional[str] = None) -> FileInfo:
        """Create a directory; ``parents`` creates missing parents and accepts
        an existing directory (else AlreadyExists)."""
        body: Dict[str, Any] = {"path": path}
        if parents:
            body["parents"] = True
        return FileInfo.from_dict(self._call("POST", self._files(id, "/mkdir"), {"root": root}, json_body=body))

    def move(self, id: str, src: str, dst: str, overwrite: bool = False, root: Optional[str] = None) -> FileInfo:
        """Rename ``src`` to ``dst`` within one root; an existing destination
        is AlreadyExists unless ``overwrite``."""
        body: Dict[str, Any] = {"from": src, "to": dst}
        if overwrite:
            body["overwrite"] = True
        return FileInfo.from_dict(self._call("POST", self._files(id, "/move"), {"root": root}, json_body=body))

    def download_output(self, user_id: str, name: str) -> bytes:
        """A file of the user's shared_files/outputs/ (where delete_session
        with keep_files puts a session's documents)."""
        path = "/users/" + _seg(user_id) + "/files/outputs/" + _seg(name)
        return self._call("GET", path, raw=True)
