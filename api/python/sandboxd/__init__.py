"""sandboxd: a client for the sandboxd daemon and Mini-Agent tool adapters.

>>> from sandboxd import Client
>>> c = Client("/run/sandboxd.sock")          # doctest: +SKIP
>>> s = c.create_session("alice")             # doctest: +SKIP
>>> c.exec(s.id, command="echo hi").stdout    # doctest: +SKIP
'hi\\n'

The Mini-Agent tools are in :mod:`sandboxd.miniagent`.
"""

from .client import API_VERSION, NDJSON, Client, ExecStream, PackageStream
from .errors import (
    AlreadyExists,
    Conflict,
    InternalError,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    PackageNotAllowed,
    PermissionDenied,
    QuotaExceeded,
    PidsLimit,
    SandboxdError,
    TooLarge,
    Unavailable,
    UnsupportedContent,
)
from .observe import DiskUsage, Event, EventsDropped, EventStream, Outcome, SessionStats
from .types import (
    DeleteSessionResult,
    EditResult,
    Env,
    ExecEvent,
    ExecResult,
    FileInfo,
    FileList,
    Info,
    InstalledPackage,
    InstallPackagesResult,
    Limits,
    MissingPackage,
    Package,
    PackageEvent,
    Process,
    ProcessOutput,
    SatisfiedPackage,
    Session,
    SessionPackages,
    TextFile,
    TextLine,
    WriteResult,
)

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "NDJSON",
    "Client",
    "ExecStream",
    "PackageStream",
    "SandboxdError",
    "InvalidArgument",
    "PermissionDenied",
    "PackageNotAllowed",
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
    "DeleteSessionResult",
    "EditResult",
    "Env",
    "ExecEvent",
    "ExecResult",
    "FileInfo",
    "FileList",
    "Info",
    "InstalledPackage",
    "InstallPackagesResult",
    "Limits",
    "MissingPackage",
    "Package",
    "PackageEvent",
    "Process",
    "ProcessOutput",
    "SatisfiedPackage",
    "Session",
    "SessionPackages",
    "TextFile",
    "TextLine",
    "WriteResult",
    "SessionStats",
    "DiskUsage",
    "Event",
    "Outcome",
    "EventStream",
    "EventsDropped",
]
