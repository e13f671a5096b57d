"""sandboxd: a client for the sandboxd daemon and Mini-Agent tool adapters.

>>> from sandboxd import Client
>>> c = Client("/run/sandboxd.sock")          # doctest: +SKIP
>>> s = c.create_session("alice")             # doctest: +SKIP
>>> c.exec(s.id, command="echo hi").stdout    # doctest: +SKIP
'hi\\n'

The Mini-Agent tools are in :mod:`sandboxd.miniagent`.
"""

from .client import API_VERSION, NDJSON, Client, ExecStream
from .errors import (
    AlreadyExists,
    Conflict,
    Expired,
    InternalError,
    InvalidArgument,
    InvalidQuota,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    PidsLimit,
    SandboxdError,
    TooLarge,
    Unavailable,
    UnsupportedContent,
)
from .types import (
    DeleteSessionResult,
    DiskUsage,
    EditResult,
    ExecEvent,
    ExecResult,
    FileInfo,
    FileList,
    Info,
    Limits,
    Process,
    ProcessOutput,
    Session,
    SessionDisk,
    TextFile,
    TextLine,
    User,
    UserLimits,
    UserUsage,
    WriteResult,
)

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "NDJSON",
    "Client",
    "ExecStream",
    "SandboxdError",
    "InvalidArgument",
    "PermissionDenied",
    "NotFound",
    "MethodNotAllowed",
    "AlreadyExists",
    "Conflict",
    "TooLarge",
    "UnsupportedContent",
    "QuotaExceeded",
    "PidsLimit",
    "Unavailable",
    "InternalError",
    "Expired",
    "InvalidQuota",
    "DeleteSessionResult",
    "DiskUsage",
    "EditResult",
    "ExecEvent",
    "ExecResult",
    "FileInfo",
    "FileList",
    "Info",
    "Limits",
    "Process",
    "ProcessOutput",
    "Session",
    "SessionDisk",
    "TextFile",
    "TextLine",
    "User",
    "UserLimits",
    "UserUsage",
    "WriteResult",
]
