"""Database URLs: which transport serves a URL, and how to show it without its token.

Pure parsing. The shell picks a transport from :attr:`DatabaseUrl.transport`:

============================================  ==========  ===================================
URL                                           transport   goes to
============================================  ==========  ===================================
``libsql://host``, ``https://host``           ``http``    ``https://host`` (Hrana over HTTP)
``http://127.0.0.1:8080/db/alice``            ``http``    as given (plain HTTP: loopback only
                                                          unless ``allow_insecure``)
``libsql://host?tls=0``                       ``http``    ``http://host``
``ws://host``, ``wss://host``                 ``ws``      libsql-client's WebSocket transport
``file:path``, ``path``, ``:memory:``         ``local``   SQLite on a worker thread
============================================  ==========  ===================================
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from enum import Enum

from ._result import Err, Ok, Result

__all__ = ["DatabaseUrl", "InvalidUrl", "TransportKind", "parse_database_url", "redact_url"]

MEMORY = ":memory:"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_TOKEN_PARAMS = frozenset({"authtoken", "auth_token", "token", "jwt"})
_REMOTE_PARAMS = frozenset({"authToken", "tls"})


class TransportKind(Enum):
    HTTP = "http"
    WEBSOCKET = "ws"
    LOCAL = "local"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseUrl:
    """A parsed database URL. ``auth_token`` (from ``?authToken=``) never shows in repr."""

    transport: TransportKind
    endpoint: str
    """HTTP(S)/WS(S) base URL without query, or the local path (``:memory:`` included)."""
    display: str
    """The URL as given, with any token replaced by ``***``: safe for logs and errors."""
    auth_token: str | None = field(default=None, repr=False)

    @property
    def is_memory(self) -> bool:
        return self.transport is TransportKind.LOCAL and self.endpoint == MEMORY

    @property
    def host(self) -> str | None:
        if self.transport is TransportKind.LOCAL:
            return None
        return urllib.parse.urlsplit(self.endpoint).hostname

    @property
    def is_unencrypted(self) -> bool:
        """``http://`` or ``ws://``: a token would travel in clear text."""
        return self.endpoint.startswith(("http://", "ws://"))

    @property
    def is_loopback(self) -> bool:
        host = self.host
        if host is None:
            return True
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidUrl:
    """The URL cannot be used; ``url`` is already redacted."""

    url: str
    reason: str

    def __str__(self) -> str:
        return f"invalid database URL {self.url!r}: {self.reason}"


def redact_url(url: str) -> str:
    """``url`` with the values of token-like query parameters and any password hidden."""
    if "?" not in url and "@" not in url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{key}={'***' if key.lower() in _TOKEN_PARAMS else value}" for key, value in pairs
        )
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _local(url: str, display: str) -> Result[DatabaseUrl, InvalidUrl]:
    if url in (MEMORY, "file::memory:", "file::memory"):
        path = MEMORY
    elif url.startswith("file:"):
        parts = urllib.parse.urlsplit(url)
        if parts.query:
            return Err(InvalidUrl(url=display, reason="file: URLs take no query parameters"))
        if parts.netloc not in ("", "localhost"):
            return Err(InvalidUrl(url=display, reason="file: URLs cannot name a remote host"))
        path = urllib.parse.unquote(parts.path)
    else:
        path = url
    if not path:
        return Err(InvalidUrl(url=display, reason="the file path is empty"))
    return Ok(DatabaseUrl(transport=TransportKind.LOCAL, endpoint=path, display=display))


def parse_database_url(url: object) -> Result[DatabaseUrl, InvalidUrl]:
    """Parse ``url`` into a :class:`DatabaseUrl`, or say (with the token redacted) why not."""
    if not isinstance(url, str) or not url.strip():
        return Err(InvalidUrl(url=repr(url), reason="expected a non-empty str"))
    display = redact_url(url)
    scheme_match = _SCHEME.match(url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme in ("", "file") or url.startswith(MEMORY):
        return _local(url, display)
    if scheme not in ("libsql", "https", "http", "ws", "wss"):
        return Err(
            InvalidUrl(
                url=display,
                reason=f"unsupported scheme {scheme!r}: use libsql, https, http, ws, wss or file",
            )
        )
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        return Err(InvalidUrl(url=display, reason=f"malformed URL ({exc})"))
    if not parts.hostname:
        return Err(InvalidUrl(url=display, reason="the URL has no host"))
    if parts.username is not None or parts.password is not None:
        return Err(InvalidUrl(url=display, reason="credentials in the URL are not supported"))
    if parts.fragment:
        return Err(InvalidUrl(url=display, reason="the URL has a fragment"))
    token: str | None = None
    tls = True
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key not in _REMOTE_PARAMS:
            return Err(
                InvalidUrl(
                    url=display,
                    reason=f"unknown query parameter {key!r} (known: authToken, tls)",
                )
            )
        if key == "authToken":
            token = value or None
        elif value in ("0", "1"):
            tls = value == "1"
        else:
            return Err(InvalidUrl(url=display, reason=f"tls must be 0 or 1, got {value!r}"))
    if scheme == "libsql":
        scheme = "https" if tls else "http"
        kind = TransportKind.HTTP
    elif scheme in ("ws", "wss"):
        kind = TransportKind.WEBSOCKET
    else:
        kind = TransportKind.HTTP
        if not tls and scheme == "https":
            scheme = "http"
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    endpoint = urllib.parse.urlunsplit((scheme, netloc, parts.path, "", ""))
    return Ok(DatabaseUrl(transport=kind, endpoint=endpoint, display=display, auth_token=token))
