"""Error values of the connection layer (opening a database, talking to it).

Closed sets: a :class:`ConnectErrorCode` says what kind of failure happened, the message
what happened to which database (URL redacted) and what to do. No error here ever holds
a token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

__all__ = ["ConnectError", "ConnectErrorCode", "code_for_status", "error_body_text"]

_MAX_ERROR_TEXT = 300


def error_body_text(body: bytes) -> tuple[str, str | None]:
    """The message, and the code if any, of an HTTP error body: ``{"error": "..."}`` (Turso),
    ``{"error": {"message", "code"}}``, ``{"message": ...}`` or plain text; shortened."""
    text = body.decode("utf-8", "replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        return text[:_MAX_ERROR_TEXT] or "no message", None
    if not isinstance(document, dict):
        return text[:_MAX_ERROR_TEXT], None
    message = document.get("error") or document.get("message")
    code = document.get("code")
    if isinstance(message, dict):
        code = message.get("code", code)
        message = message.get("message")
    shown = str(message)[:_MAX_ERROR_TEXT] if message else text[:_MAX_ERROR_TEXT]
    return shown, str(code) if code else None


class ConnectErrorCode(Enum):
    INVALID_URL = "INVALID_URL"
    INSECURE_URL = "INSECURE_URL"
    OPEN_FAILED = "OPEN_FAILED"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    SERVER_ERROR = "SERVER_ERROR"
    NETWORK_ERROR = "NETWORK_ERROR"
    TIMEOUT = "TIMEOUT"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    SQL_ERROR = "SQL_ERROR"
    MIGRATION_FAILED = "MIGRATION_FAILED"


_STATUS_CODES = {
    401: ConnectErrorCode.UNAUTHORIZED,
    403: ConnectErrorCode.FORBIDDEN,
    404: ConnectErrorCode.NOT_FOUND,
    408: ConnectErrorCode.TIMEOUT,
    429: ConnectErrorCode.RATE_LIMITED,
}


def code_for_status(status: int) -> ConnectErrorCode:
    """The error code of an HTTP status that is not 200."""
    if status in _STATUS_CODES:
        return _STATUS_CODES[status]
    if status >= 500:
        return ConnectErrorCode.SERVER_ERROR
    return ConnectErrorCode.PROTOCOL_ERROR


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectError:
    """Why a database could not be opened (or connected and migrated).

    ``url`` is redacted; ``status`` is the HTTP status when there was one; ``detail`` is
    the underlying error's own message (a server's text, SQLite's message).
    """

    code: ConnectErrorCode
    url: str
    message: str
    status: int | None = None
    detail: str | None = None
    cause: object | None = None
    """A richer error value behind this one (a ``MigrationError``), when there is one."""

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.code.value}{status} for {self.url}: {self.message}{detail}"
