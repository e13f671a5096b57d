"""Typed exceptions for sandboxd's error envelope.

Every failed request answers with ``{"error": "<message>", "code": "<code>"}``
and an HTTP status that goes with the code. :func:`error_from_response` turns
such an answer into the :class:`SandboxdError` subclass of its code, so callers
write ``except sandboxd.NotFound:``.
"""

from __future__ import annotations

import json
from typing import Dict, Optional, Type

__all__ = [
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
    "Expired",
    "InvalidQuota",
    "error_from_response",
    "error_for_code",
]


class SandboxdError(Exception):
    """A request the daemon refused or failed.

    Attributes:
        status: the HTTP status of the answer (0 when the error did not come
            with one, e.g. an ``error`` event in the middle of a stream).
        code: the envelope's code, e.g. ``"not_found"``.
        message: the envelope's message, with the daemon's context.
    """

    #: The code this class stands for (None for the base class).
    CODE: Optional[str] = None
    #: The HTTP status that comes with CODE.
    STATUS: int = 0

    def __init__(self, message: str, code: Optional[str] = None, status: Optional[int] = None):
        self.message = message
        self.code = code if code is not None else (self.CODE or "")
        self.status = status if status is not None else self.STATUS
        super().__init__(message)

    def __str__(self) -> str:
        if self.status:
            return "%s (%s, HTTP %d)" % (self.message, self.code, self.status)
        if self.code:
            return "%s (%s)" % (self.message, self.code)
        return self.message

    def __repr__(self) -> str:
        return "%s(message=%r, code=%r, status=%r)" % (type(self).__name__, self.message, self.code, self.status)


class InvalidArgument(SandboxdError):
    """400 invalid_argument: the request is malformed or a value is out of range."""

    CODE = "invalid_argument"
    STATUS = 400


class PermissionDenied(SandboxdError):
    """403 permission_denied: the path leaves its root, or the file may not be touched."""

    CODE = "permission_denied"
    STATUS = 403


class PackageNotAllowed(SandboxdError):
    """403 package_not_allowed: the package allow-list refused a package, or
    a version of one, that an install asked for or needed; the message names
    it and the list's line."""

    CODE = "package_not_allowed"
    STATUS = 403


class NotFound(SandboxdError):
    """404 not_found: no such session, file, process or route."""

    CODE = "not_found"
    STATUS = 404


class MethodNotAllowed(SandboxdError):
    """405 method_not_allowed: the route exists but not with this method."""

    CODE = "method_not_allowed"
    STATUS = 405


class AlreadyExists(SandboxdError):
    """409 already_exists: a session with this id, or a file at this path, exists."""

    CODE = "already_exists"
    STATUS = 409


class Conflict(SandboxdError):
    """409 conflict: the request contradicts the current state (an edit's old
    text occurs another number of times, a directory is not empty)."""

    CODE = "conflict"
    STATUS = 409


class TooLarge(SandboxdError):
    """413 too_large: a body or a file is over the daemon's limit."""

    CODE = "too_large"
    STATUS = 413


class UnsupportedContent(SandboxdError):
    """415 unsupported_content: e.g. a binary file asked for as text."""

    CODE = "unsupported_content"
    STATUS = 415


class QuotaExceeded(SandboxdError):
    """429 quota_exceeded: a session, disk, file or process quota is used up
    (a write past a disk limit: the message names the limit)."""

    CODE = "quota_exceeded"
    STATUS = 429


class PidsLimit(SandboxdError):
    """429 pids_limit: the session's processes are all in use; the command
    could not start."""

    CODE = "pids_limit"
    STATUS = 429


class Unavailable(SandboxdError):
    """503 unavailable: the daemon cannot serve this now (e.g. shutting down)."""

    CODE = "unavailable"
    STATUS = 503


class Expired(SandboxdError):
    """410 expired: the session outlived its user's max_session_duration_hours;
    it was stopped, its documents kept, and serves only get and delete."""

    CODE = "expired"
    STATUS = 410


class InvalidQuota(SandboxdError):
    """400 invalid_quota: the user's quota.json cannot be parsed or used; the
    message names the file's error."""

    CODE = "invalid_quota"
    STATUS = 400


class InternalError(SandboxdError):
    """500 internal: an unexpected failure; also any answer that is not an envelope."""

    CODE = "internal"
    STATUS = 500


_BY_CODE: Dict[str, Type[SandboxdError]] = {
    cls.CODE: cls  # type: ignore[misc]
    for cls in (
        InvalidArgument,
        PermissionDenied,
        PackageNotAllowed,
        NotFound,
        MethodNotAllowed,
        AlreadyExists,
        Conflict,
        TooLarge,
        UnsupportedContent,
        QuotaExceeded,
        PidsLimit,
        Unavailable,
        InternalError,
        Expired,
        InvalidQuota,
    )
}


def error_for_code(code: str, message: str, status: Optional[int] = None) -> SandboxdError:
    """Build the exception of ``code``; an unknown code gives a plain SandboxdError."""
    cls = _BY_CODE.get(code, SandboxdError)
    return cls(message, code=code, status=status if status is not None else (cls.STATUS if cls is not SandboxdError else 0))


def error_from_response(status: int, body: bytes, reason: str = "") -> SandboxdError:
    """Turn a failed answer into an exception: the envelope's class when the
    body is one, else :class:`InternalError` carrying the body's text."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("code"), str) and doc.get("code"):
        msg = doc.get("error")
        return error_for_code(doc["code"], msg if isinstance(msg, str) else "", status)
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        text = reason or ("HTTP %d" % status)
    return InternalError(text, code=InternalError.CODE, status=status)
