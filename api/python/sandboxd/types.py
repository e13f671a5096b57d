"""The API's JSON types as dataclasses.

Each class has a ``from_dict`` constructor that ignores fields it does not
know (a newer daemon may add some) and fills absent ones with their defaults.
Timestamps become timezone-aware :class:`datetime.datetime` objects (None when
absent or zero).
"""

from __future__ import annotations

import base64
import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Type, TypeVar

__all__ = [
    "Limits",
    "Info",
    "Session",
    "ExecResult",
    "ExecEvent",
    "DeleteSessionResult",
    "Process",
    "ProcessOutput",
    "FileInfo",
    "FileList",
    "TextLine",
    "TextFile",
    "WriteResult",
    "EditResult",
    "Package",
    "MissingPackage",
    "Env",
    "InstalledPackage",
    "SatisfiedPackage",
    "InstallPackagesResult",
    "PackageEvent",
    "SessionPackages",
    "User",
    "UserLimits",
    "UserUsage",
    "DiskUsage",
    "SessionDisk",
    "parse_time",
]

T = TypeVar("T", bound="_Model")

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_time(value: Any) -> Optional[datetime]:
    """Parse an RFC 3339 timestamp as Go writes it (up to nanoseconds, "Z" or
    an offset). Go's zero time (year 1) and empty or absent values give None;
    anything unparsable gives None as well."""
    if not isinstance(value, str) or not value:
        return None
    m = _TIME_RE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if year <= 1:
        return None
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6])
    tz = m.group(8)
    if not tz or tz in ("Z", "z"):
        tzinfo = timezone.utc
    else:
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        tzinfo = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tzinfo)
    except ValueError:
        return None


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def _float(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _bool(v: Any) -> bool:
    return bool(v) if isinstance(v, bool) else False


def _opt_int(v: Any) -> Optional[int]:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str_list(v: Any) -> List[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def _list_of(cls: "Type[_Model]") -> Callable[[Any], list]:
    def conv(v: Any) -> list:
        return [cls.from_dict(x) for x in v if isinstance(x, Mapping)] if isinstance(v, list) else []

    return conv


def _obj(cls: "Type[_Model]") -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        return cls.from_dict(v if isinstance(v, Mapping) else {})

    return conv


def _opt_obj(cls: "Type[_Model]") -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        return cls.from_dict(v) if isinstance(v, Mapping) else None

    return conv


class _Model:
    """Base of the dataclasses: ``from_dict`` driven by ``_CONVERT``, a
    mapping of JSON key to (attribute, converter)."""

    _CONVERT: Dict[str, Any] = {}

    @classmethod
    def from_dict(cls: Type[T], d: Mapping[str, Any]) -> T:
        """Build the object from decoded JSON, ignoring unknown fields."""
        kwargs: Dict[str, Any] = {}
        for key, (attr, conv) in cls._conversions().items():
            if key in d and d[key] is not None:
                kwargs[attr] = conv(d[key])
        return cls(**kwargs)  # type: ignore[call-arg]

    @classmethod
    def wire_fields(cls) -> Dict[str, str]:
        """The JSON keys ``from_dict`` reads, each with the attribute it
        fills (the contract test holds them to api/openapi.yaml)."""
        return {key: attr for key, (attr, _) in cls._conversions().items()}

    @classmethod
    def _conversions(cls) -> Dict[str, Any]:
        conv: Dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            conv.update(klass.__dict__.get("_CONVERT", {}))
        return conv

    def to_dict(self) -> Dict[str, Any]:
        """The object as a plain dict (datetimes stay datetimes)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass
class Limits(_Model):
    """A session's kernel-enforced limits; on create, zero fields take the
    daemon's defaults."""

    cpus: float = 0.0
    memory_mb: int = 0
    pids: int = 0
    tmp_mb: int = 0

    _CONVERT = {
        "cpus": ("cpus", _float),
        "memory_mb": ("memory_mb", _int),
        "pids": ("pids", _int),
        "tmp_mb": ("tmp_mb", _int),
    }

    def to_json(self) -> Dict[str, Any]:
        """The request form: zero fields left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


@dataclass
class Package(_Model):
    """An installed distribution."""

    name: str = ""
    version: str = ""

    _CONVERT = {
        "name": ("name", _str),
        "version": ("version", _str),
    }


@dataclass
class MissingPackage(_Model):
    """A declared requirement a base environment does not meet, and why;
    ``found`` is the version it has, if any."""

    requirement: str = ""
    found: str = ""
    reason: str = ""

    _CONVERT = {
        "requirement": ("requirement", _str),
        "found": ("found", _str),
        "reason": ("reason", _str),
    }


@dataclass
class Env(_Model):
    """One version of the base environment sessions overlay.

    ``current`` is the one new sessions get; ``sessions`` counts those
    running on it. ``present`` and ``missing`` say what it has and lacks of
    the ``declared`` requirements; ``packages`` is everything it has.
    """

    id: str = ""
    created: Optional[datetime] = None
    python: str = ""
    current: bool = False
    sessions: int = 0
    declared: List[str] = field(default_factory=list)
    present: List[Package] = field(default_factory=list)
    missing: List[MissingPackage] = field(default_factory=list)
    packages: List[Package] = field(default_factory=list)

    _CONVERT = {
        "id": ("id", _str),
        "created": ("created", parse_time),
        "python": ("python", _str),
        "current": ("current", _bool),
        "sessions": ("sessions", _int),
        "declared": ("declared", _str_list),
        "present": ("present", _list_of(Package)),
        "missing": ("missing", _list_of(MissingPackage)),
        "packages": ("packages", _list_of(Package)),
    }


@dataclass
class Info(_Model):
    """The answer of GET /v1; ``env`` is the base environment new sessions
    get (None before one is built)."""

    version: str = ""
    api_version: str = ""
    cgroup_mode: str = ""
    cgroup_parent: str = ""
    controllers: List[str] = field(default_factory=list)
    default_limits: Limits = field(default_factory=Limits)
    max_limits: Limits = field(default_factory=Limits)
    sessions: int = 0
    env: Optional[Env] = None
    #: How disk limits are enforced: "project", "loop" or "none".
    quota_mode: str = ""

    _CONVERT = {
        "version": ("version", _str),
        "api_version": ("api_version", _str),
        "cgroup_mode": ("cgroup_mode", _str),
        "cgroup_parent": ("cgroup_parent", _str),
        "controllers": ("controllers", _str_list),
        "default_limits": ("default_limits", _obj(Limits)),
        "max_limits": ("max_limits", _obj(Limits)),
        "sessions": ("sessions", _int),
        "env": ("env", _opt_obj(Env)),
        "quota_mode": ("quota_mode", _str),
    }


@dataclass
class Session(_Model):
    """One live session."""

    id: str = ""
    user_id: str = ""
    created_at: Optional[datetime] = None
    limits: Limits = field(default_factory=Limits)
    #: "running", "frozen" (idle; the next call thaws it), "stopped",
    #: "expired" (past its maximum duration; reason says when) or "broken".
    status: str = ""
    #: Why the session is not running, when it is not.
    reason: str = ""
    #: Where the session's files are inside the sandbox ("/workspace").
    workspace: str = ""

    _CONVERT = {
        "id": ("id", _str),
        "user_id": ("user_id", _str),
        "created_at": ("created_at", parse_time),
        "limits": ("limits", _obj(Limits)),
        "status": ("status", _str),
        "reason": ("reason", _str),
        "workspace": ("workspace", _str),
    }


@dataclass
class NotKept(_Model):
    """A file a delete with keep_files could not keep, and why ("*" when
    the whole step failed)."""

    name: str = ""
    reason: str = ""

    _CONVERT = {"name": ("name", _str), "reason": ("reason", _str)}


@dataclass
class DeleteSessionResult(_Model):
    """The answer of DELETE /v1/sessions/{id}."""

    id: str = ""
    #: The names the kept files got in the user's shared_files/outputs/.
    kept_files: List[str] = field(default_factory=list)
    #: The files that should have been kept and could not be.
    not_kept: List[NotKept] = field(default_factory=list)

    _CONVERT = {
        "id": ("id", _str),
        "kept_files": ("kept_files", _str_list),
        "not_kept": ("not_kept", _list_of(NotKept)),
    }


@dataclass
class ExecResult(_Model):
    """The outcome of one command.

    ``exit_code`` is the exit status, or 128+n when signal n ended the
    command (137 for SIGKILL), with ``signal`` naming the signal.
    """

    exit_code: int = 0
    signal: str = ""
    timed_out: bool = False
    oom_killed: bool = False
    duration_ms: int = 0
    #: User and system CPU time of the command's processes.
    cpu_ms: int = 0
    #: The most memory the command used at once.
    peak_memory_bytes: int = 0
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    _CONVERT = {
        "exit_code": ("exit_code", _int),
        "signal": ("signal", _str),
        "timed_out": ("timed_out", _bool),
        "oom_killed": ("oom_killed", _bool),
        "duration_ms": ("duration_ms", _int),
        "cpu_ms": ("cpu_ms", _int),
        "peak_memory_bytes": ("peak_memory_bytes", _int),
        "stdout": ("stdout", _str),
        "stderr": ("stderr", _str),
        "stdout_truncated": ("stdout_truncated", _bool),
        "stderr_truncated": ("stderr_truncated", _bool),
    }


@dataclass
class ExecEvent(_Model):
    """One event of a streamed exec.

    ``type`` is "stdout", "stderr", "exit" or "error". For output events
    ``data`` is the chunk as bytes — the daemon sends it as text when it is
    valid UTF-8 and base64-encoded (``data_b64``) when it is not, and both
    arrive here as the original bytes, so concatenating the chunks of a
    stream gives its exact output. The exit event carries ``result`` (whose
    stdout and stderr are empty); the error event ``error`` and ``code``.
    """

    type: str = ""
    data: bytes = b""
    result: Optional[ExecResult] = None
    error: str = ""
    code: str = ""

    @classmethod
    def wire_fields(cls) -> Dict[str, str]:
        return {"type": "type", "data": "data", "data_b64": "data", "result": "result", "error": "error", "code": "code"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExecEvent":
        data = b""
        if isinstance(d.get("data_b64"), str) and d["data_b64"]:
            data = base64.b64decode(d["data_b64"])
        elif isinstance(d.get("data"), str):
            data = d["data"].encode("utf-8")
        res = d.get("result")
        return cls(
            type=_str(d.get("type")),
            data=data,
            result=ExecResult.from_dict(res) if isinstance(res, Mapping) else None,
            error=_str(d.get("error")),
            code=_str(d.get("code")),
        )

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8, invalid bytes replaced."""
        return self.data.decode("utf-8", errors="replace")


@dataclass
class InstalledPackage(_Model):
    """A package an install put into the session; ``required_by`` names
    ("name version") the package that needed it, empty for one asked for."""

    name: str = ""
    version: str = ""
    required_by: str = ""

    _CONVERT = {
        "name": ("name", _str),
        "version": ("version", _str),
        "required_by": ("required_by", _str),
    }


@dataclass
class SatisfiedPackage(_Model):
    """A requirement the session's environment already met."""

    name: str = ""
    version: str = ""
    requirement: str = ""
    required_by: str = ""

    _CONVERT = {
        "name": ("name", _str),
        "version": ("version", _str),
        "requirement": ("requirement", _str),
        "required_by": ("required_by", _str),
    }


@dataclass
class InstallPackagesResult(_Model):
    """What an install did: ``installed`` into the session's own layer,
    dependencies included, and ``satisfied`` by what the environment had.
    ``pip`` is how pip ran (None when nothing needed installing)."""

    env: str = ""
    installed: List[InstalledPackage] = field(default_factory=list)
    satisfied: List[SatisfiedPackage] = field(default_factory=list)
    pip: Optional[ExecResult] = None

    _CONVERT = {
        "env": ("env", _str),
        "installed": ("installed", _list_of(InstalledPackage)),
        "satisfied": ("satisfied", _list_of(SatisfiedPackage)),
        "pip": ("pip", _opt_obj(ExecResult)),
    }


@dataclass
class PackageEvent(ExecEvent):
    """One event of a streamed install: pip's "stdout" and "stderr" output
    as :class:`ExecEvent`'s, then "installed" carrying ``install``, or
    "error"."""

    install: Optional[InstallPackagesResult] = None

    @classmethod
    def wire_fields(cls) -> Dict[str, str]:
        return dict(super().wire_fields(), install="install")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PackageEvent":
        ev = super().from_dict(d)
        inst = d.get("install")
        ev.install = InstallPackagesResult.from_dict(inst) if isinstance(inst, Mapping) else None
        return ev  # type: ignore[return-value]


@dataclass
class SessionPackages(_Model):
    """What a session has beyond its base environment ``env``."""

    env: str = ""
    packages: List[Package] = field(default_factory=list)

    _CONVERT = {
        "env": ("env", _str),
        "packages": ("packages", _list_of(Package)),
    }


@dataclass
class Process(_Model):
    """A background process of a session.

    ``status`` is "running", "exited" or "killed"; ``exit_code`` (None while
    running) is the exit status, or 128+n when signal n ended the process.
    """

    #: Names the process within its session (the {pid} of the routes).
    id: str = ""
    #: The command's process id inside the sandbox.
    pid: int = 0
    command: str = ""
    status: str = ""
    exit_code: Optional[int] = None
    signal: str = ""
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    #: Once it ended: what its processes used, as in ExecResult.
    cpu_ms: int = 0
    peak_memory_bytes: int = 0
    oom_killed: bool = False

    _CONVERT = {
        "id": ("id", _str),
        "pid": ("pid", _int),
        "command": ("command", _str),
        "status": ("status", _str),
        "exit_code": ("exit_code", _opt_int),
        "signal": ("signal", _str),
        "started_at": ("started_at", parse_time),
        "ended_at": ("ended_at", parse_time),
        "cpu_ms": ("cpu_ms", _int),
        "peak_memory_bytes": ("peak_memory_bytes", _int),
        "oom_killed": ("oom_killed", _bool),
    }


@dataclass
class ProcessOutput(Process):
    """A background process's output not read before (stdout and stderr
    merged in arrival order, without line endings) and its state."""

    lines: List[str] = field(default_factory=list)
    #: Lines that fell out of the daemon's bounded buffer before being read.
    dropped: int = 0

    _CONVERT = {"lines": ("lines", _str_list), "dropped": ("dropped", _int)}


@dataclass
class FileInfo(_Model):
    """One directory entry; symlinks are reported, not followed."""

    name: str = ""
    #: Relative to the root.
    path: str = ""
    #: "file", "dir", "symlink" or "other".
    type: str = ""
    size: int = 0
    #: Permission bits in octal, e.g. "0644".
    mode: str = ""
    mtime: Optional[datetime] = None
    link_target: str = ""

    _CONVERT = {
        "name": ("name", _str),
        "path": ("path", _str),
        "type": ("type", _str),
        "size": ("size", _int),
        "mode": ("mode", _str),
        "mtime": ("mtime", parse_time),
        "link_target": ("link_target", _str),
    }


@dataclass
class FileList(_Model):
    """A directory listing."""

    root: str = ""
    path: str = ""
    entries: List[FileInfo] = field(default_factory=list)
    #: A recursive listing stopped at the daemon's entry limit.
    truncated: bool = False

    _CONVERT = {
        "root": ("root", _str),
        "path": ("path", _str),
        "entries": ("entries", _list_of(FileInfo)),
        "truncated": ("truncated", _bool),
    }


@dataclass
class TextLine(_Model):
    """One line of a text file, numbered from 1, without its line ending."""

    n: int = 0
    text: str = ""

    _CONVERT = {"n": ("n", _int), "text": ("text", _str)}


@dataclass
class TextFile(_Model):
    """Some lines of a text file and the file's line count."""

    path: str = ""
    lines: List[TextLine] = field(default_factory=list)
    total_lines: int = 0

    _CONVERT = {
        "path": ("path", _str),
        "lines": ("lines", _list_of(TextLine)),
        "total_lines": ("total_lines", _int),
    }


@dataclass
class WriteResult(_Model):
    """The answer of a file upload."""

    path: str = ""
    size: int = 0
    sha256: str = ""

    _CONVERT = {"path": ("path", _str), "size": ("size", _int), "sha256": ("sha256", _str)}


@dataclass
class EditResult(_Model):
    """The answer of an edit."""

    path: str = ""
    replacements: int = 0
    size: int = 0
    sha256: str = ""

    _CONVERT = {
        "path": ("path", _str),
        "replacements": ("replacements", _int),
        "size": ("size", _int),
        "sha256": ("sha256", _str),
    }


@dataclass
class UserLimits(_Model):
    """A user's limits: the daemon's defaults, overridden by their
    quota.json. A duration of 0 is "never"."""

    max_sessions: int = 0
    max_workspace_size_mb: int = 0
    session_disk_mb: int = 0
    max_files_per_session: int = 0
    max_session_duration_hours: float = 0.0
    idle_freeze_after_sec: float = 0.0
    idle_delete_after_sec: float = 0.0

    _CONVERT = {
        "max_sessions": ("max_sessions", _int),
        "max_workspace_size_mb": ("max_workspace_size_mb", _int),
        "session_disk_mb": ("session_disk_mb", _int),
        "max_files_per_session": ("max_files_per_session", _int),
        "max_session_duration_hours": ("max_session_duration_hours", _float),
        "idle_freeze_after_sec": ("idle_freeze_after_sec", _float),
        "idle_delete_after_sec": ("idle_delete_after_sec", _float),
    }


@dataclass
class DiskUsage(_Model):
    """What is used of one disk limit; files counts files and directories."""

    bytes: int = 0
    limit_bytes: int = 0
    files: int = 0
    limit_files: int = 0

    _CONVERT = {
        "bytes": ("bytes", _int),
        "limit_bytes": ("limit_bytes", _int),
        "files": ("files", _int),
        "limit_files": ("limit_files", _int),
    }


@dataclass
class SessionDisk(DiskUsage):
    """One session's disk."""

    session_id: str = ""

    _CONVERT = {"session_id": ("session_id", _str)}


@dataclass
class UserUsage(_Model):
    """A user's disk, as the quota mechanism counts it. With quota_mode
    "none" nothing is enforced and the figures are zero."""

    quota_mode: str = ""
    enforced: bool = False
    #: What shared_files and the sessions' trees hold.
    used_bytes: int = 0
    #: What the live sessions reserve of limit_bytes, the budget.
    reserved_bytes: int = 0
    limit_bytes: int = 0
    files: int = 0
    #: The user's sessions that are not expired.
    sessions: int = 0
    #: shared_files, whose limit is the budget less the reservations.
    shared: DiskUsage = field(default_factory=DiskUsage)
    session_disks: List[SessionDisk] = field(default_factory=list)

    _CONVERT = {
        "quota_mode": ("quota_mode", _str),
        "enforced": ("enforced", _bool),
        "used_bytes": ("used_bytes", _int),
        "reserved_bytes": ("reserved_bytes", _int),
        "limit_bytes": ("limit_bytes", _int),
        "files": ("files", _int),
        "sessions": ("sessions", _int),
        "shared": ("shared", _obj(DiskUsage)),
        "session_disks": ("session_disks", _list_of(SessionDisk)),
    }


@dataclass
class User(_Model):
    """The answer of GET /v1/users/{user_id}: a user's limits, disk usage
    and sessions (oldest first, expired ones included)."""

    user_id: str = ""
    limits: UserLimits = field(default_factory=UserLimits)
    usage: UserUsage = field(default_factory=UserUsage)
    sessions: List[Session] = field(default_factory=list)

    _CONVERT = {
        "user_id": ("user_id", _str),
        "limits": ("limits", _obj(UserLimits)),
        "usage": ("usage", _obj(UserUsage)),
        "sessions": ("sessions", _list_of(Session)),
    }
