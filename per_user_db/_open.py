"""``open_database``: pick the transport for a URL and open it."""

from __future__ import annotations

import functools
import sqlite3
from typing import TYPE_CHECKING

from ._database import Database
from ._transports._http import HttpTransport, TokenProvider
from ._transports._local import LocalTransport
from ._transports._pool import shared_session
from ._transports._sqlite import DEFAULT_BUSY_TIMEOUT
from ._transports._ws import WsTransport
from .core._errors import ConnectError, ConnectErrorCode
from .core._result import Err, Ok, Result
from .core._urls import DatabaseUrl, InvalidUrl, TransportKind, parse_database_url

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DEFAULT_TIMEOUT", "open_database"]

DEFAULT_TIMEOUT = 30.0


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> Result[DatabaseUrl, InvalidUrl]:
    # An app opens the same users' databases again and again: parse each URL once.
    return parse_database_url(url)


@functools.lru_cache(maxsize=1024)
def _is_loopback(url: DatabaseUrl) -> bool:
    return url.is_loopback


async def open_database(
    url: str,
    auth_token: str | None = None,
    *,
    request_timeout: float = DEFAULT_TIMEOUT,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    allow_insecure: bool = False,
    session: aiohttp.ClientSession | None = None,
    close_streams: bool = True,
    assert_foreign_keys: bool = False,
    token_provider: TokenProvider | None = None,
) -> Result[Database, ConnectError]:
    """Open the database at ``url``; nothing is sent over the network yet.

    ``libsql://``, ``https://`` and ``http://`` speak Turso's HTTP protocol (plain
    ``http://`` and ``ws://`` only to loopback hosts unless ``allow_insecure``); ``file:``
    URLs, paths
    and ``:memory:`` open SQLite on a worker thread; ``ws://``/``wss://`` use
    libsql-client's WebSocket transport. ``auth_token`` wins over an ``?authToken=`` in
    the URL. ``request_timeout`` bounds every network request, ``busy_timeout`` how long SQLite
    waits for a lock.

    HTTP databases share the event loop's pooled session, so databases on one origin
    reuse kept-alive connections (see :func:`close_shared_sessions`); pass ``session`` to
    use your own (it is not closed with the database). ``close_streams=False`` leaves out
    the ``close`` request that ends every one-shot HTTP pipeline, for servers without
    streams that reject it (``tursodb --sync-server``). ``assert_foreign_keys=True`` starts
    every HTTP stream with ``PRAGMA foreign_keys = ON``, for a server that does not enable
    them by default as Turso and the local Turso do. ``token_provider`` (HTTP only) is
    awaited for a fresh token when the server answers 401; the request is then sent once
    more, which is safe because a rejected request never ran.
    """
    # Anything but a str (which the signature excludes) is refused by the parser itself.
    parsed_url = _parsed(url) if type(url) is str else parse_database_url(url)
    match parsed_url:
        case Err(invalid):
            return Err(
                ConnectError(
                    code=ConnectErrorCode.INVALID_URL, url=invalid.url, message=invalid.reason
                )
            )
        case Ok(parsed):
            pass
    if request_timeout <= 0 or busy_timeout < 0:
        raise ValueError("request_timeout must be positive and busy_timeout not negative")
    token = auth_token if auth_token is not None else parsed.auth_token
    match parsed.transport:
        case TransportKind.LOCAL:
            try:
                local = await LocalTransport.open(parsed, busy_timeout=busy_timeout)
            except sqlite3.Error as exc:
                return Err(
                    ConnectError(
                        code=ConnectErrorCode.OPEN_FAILED,
                        url=parsed.display,
                        message="SQLite cannot open the file; check that its folder exists "
                        "and is writable",
                        detail=str(exc),
                    )
                )
            return Ok(Database(local, parsed))
        case TransportKind.HTTP | TransportKind.WEBSOCKET if (
            parsed.is_unencrypted and not allow_insecure and not _is_loopback(parsed)
        ):
            return Err(
                ConnectError(
                    code=ConnectErrorCode.INSECURE_URL,
                    url=parsed.display,
                    message="plain http:// or ws:// would send the token unencrypted; use "
                    "https://, wss:// or libsql://, or pass allow_insecure=True for a "
                    "trusted network",
                )
            )
        case TransportKind.HTTP:
            transport = HttpTransport(
                parsed,
                token,
                session=session if session is not None else shared_session(),
                timeout=request_timeout,
                close_streams=close_streams,
                assert_foreign_keys=assert_foreign_keys,
                token_provider=token_provider,
            )
            return Ok(Database(transport, parsed))
        case TransportKind.WEBSOCKET:
            return Ok(Database(WsTransport(parsed, token, timeout=request_timeout), parsed))
