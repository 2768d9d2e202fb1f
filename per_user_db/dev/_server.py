"""The local Hrana-over-HTTP server: SQLite files in a directory, served like Turso.

``DIR/<name>.db`` is served at ``http://HOST:PORT/db/<name>/`` with the routes Turso Cloud
answers today: ``POST v2/pipeline``, ``POST v3/pipeline``, ``POST v3/cursor``,
``GET health`` and ``GET version`` (the last two also at the root). SQL errors travel
in-band in 200 responses; HTTP-level errors carry ``{"error": "..."}`` bodies.

This module only translates HTTP to the codec (:mod:`per_user_db.core._hrana`), the
stream registry (:mod:`._state`) and SQLite (:mod:`._engine`) and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio
from aiohttp import web

from per_user_db.core._hrana import (
    CloseRequest,
    CursorErrorEntry,
    CursorHeader,
    PipelineResponse,
    ProtocolError,
    RowEntry,
    StepBeginEntry,
    StepEndEntry,
    StepErrorEntry,
    StreamError,
    decode_cursor_request,
    decode_pipeline_request,
    encode_cursor_entry,
    encode_cursor_header,
    encode_pipeline_response,
)
from per_user_db.core._result import Err, Ok
from per_user_db.dev._engine import execute_batch, run_and_reset, run_stream_requests
from per_user_db.dev._state import (
    DATABASE_NAME,
    ROOT_NAME,
    TRANSACTION_TIMED_OUT,
    Access,
    ProtocolServerState,
    Stream,
    StreamRefusal,
    allow_all,
    explain_batch,
    explain_refusals,
)
from per_user_db.dev._websocket import add_websocket_route

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Awaitable, Callable

    from per_user_db.core._hrana import BatchResult, StreamRequest, StreamResult
    from per_user_db.dev._state import Authorize

__all__ = [
    "PROTOCOL_STATE",
    "TLS_CONTEXT",
    "ServerAddress",
    "create_protocol_app",
    "protocol_state",
    "serve",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

SERVER_VERSION = "per-user-db dev server (Hrana over HTTP 2 and 3)"

PROTOCOL_STATE: web.AppKey[ProtocolServerState] = web.AppKey(
    "per_user_db.protocol_state", ProtocolServerState
)
TLS_CONTEXT: web.AppKey[ssl.SSLContext] = web.AppKey("per_user_db.tls_context", ssl.SSLContext)
"""Set on an app that is to be served over HTTPS (the local Turso's TLS mode)."""


DEFAULT_STATEMENT_TIMEOUT = 30.0
"""Seconds a request's SQL may run on the local server: as long as the client library's
own request timeout, after which nobody waits for the answer. sqld itself has no limit,
and interrupts a statement only when its client goes away, as the local server also does."""


DEFAULT_TRANSACTION_TIMEOUT = 5.0
"""Seconds an interactive transaction may stay open: sqld's TXN_TIMEOUT."""


def create_protocol_app(
    data_dir: str | os.PathLike[str],
    *,
    authorize: Authorize | None = None,
    stream_idle_timeout: float = 10.0,
    create_on_demand: bool = False,
    busy_timeout: float = 5.0,
    statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT,
    transaction_timeout: float | None = DEFAULT_TRANSACTION_TIMEOUT,
    root_database: str | os.PathLike[str] | None = None,
) -> web.Application:
    """An aiohttp application serving the SQLite databases in ``data_dir``.

    ``authorize(token, database)`` decides access per request (default: read-write for
    everyone). A missing database is a 404 unless ``create_on_demand``; otherwise create
    databases through :func:`protocol_state` ``(app).create_database(name)``.
    ``statement_timeout`` (seconds; None: no limit) interrupts a request's SQL still
    running after that long (``SQLITE_INTERRUPT``). A client that disconnects, and a
    server that stops, interrupt theirs at once. ``transaction_timeout`` rolls back an
    interactive transaction held open longer (Turso's ~5 s); the stream's next request
    then fails with ``TRANSACTION_TIMEOUT``.

    ``root_database`` serves that one file at the root as well (``/v2/pipeline``,
    ``/v3/pipeline``, ``/v3/cursor`` and WebSocket at ``/``), as ``turso dev --db-file``
    does; it is also ``/db/main/``.
    """
    state = ProtocolServerState(
        Path(data_dir),
        authorize=authorize or allow_all,
        stream_idle_timeout=stream_idle_timeout,
        create_on_demand=create_on_demand,
        busy_timeout=busy_timeout,
        statement_timeout=statement_timeout,
        transaction_timeout=transaction_timeout,
        root_database=None if root_database is None else Path(root_database),
    )
    app = web.Application(middlewares=[_count_and_map_errors])
    app[PROTOCOL_STATE] = state
    app.cleanup_ctx.append(_stream_reaper)
    app.router.add_get("/health", _health, name="health")
    app.router.add_get("/version", _version, name="version")
    base = "/db/{name}/"
    app.router.add_get(base + "health", _health, name="db-health")
    app.router.add_get(base + "version", _version, name="db-version")
    app.router.add_get(base + "v2", _health, name="v2")
    app.router.add_get(base + "v3", _health, name="v3")
    app.router.add_post(base + "v2/pipeline", _pipeline_v2, name="v2.pipeline")
    app.router.add_post(base + "v3/pipeline", _pipeline_v3, name="v3.pipeline")
    app.router.add_post(base + "v3/cursor", _cursor, name="v3.cursor")
    if root_database is not None:
        app.router.add_get("/v2", _health, name="root.v2")
        app.router.add_get("/v3", _health, name="root.v3")
        app.router.add_post("/v2/pipeline", _pipeline_v2, name="root.v2.pipeline")
        app.router.add_post("/v3/pipeline", _pipeline_v3, name="root.v3.pipeline")
        app.router.add_post("/v3/cursor", _cursor, name="root.v3.cursor")
    add_websocket_route(app, state)  # Hrana over WebSocket at the database's base URL
    return app


def protocol_state(app: web.Application) -> ProtocolServerState:
    """The state of an app made by :func:`create_protocol_app` (databases, counters)."""
    return app[PROTOCOL_STATE]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerAddress:
    """Where :func:`serve` is listening, and whether over HTTPS."""

    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        # An IPv6 literal needs brackets in a URL.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def database_url(self, name: str) -> str:
        """The base URL of one database, with the trailing slash clients need."""
        return f"{self.url}/db/{name}/"


@contextlib.asynccontextmanager
async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[ServerAddress]:
    """Run ``app`` on ``host:port`` (0 picks a free port) until the block exits.

    HTTPS with ``ssl_context``, else with the app's own :data:`TLS_CONTEXT` if it has one
    (``create_local_turso_app(..., tls=True)``), else plain HTTP.
    """
    if ssl_context is None:
        ssl_context = app.get(TLS_CONTEXT)
    # A handler whose client went away is cancelled, which interrupts its SQL.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        yield ServerAddress(host=host, port=bound_port, tls=ssl_context is not None)
    finally:
        await runner.cleanup()


# --- app lifecycle -------------------------------------------------------------------------


async def _stream_reaper(app: web.Application) -> AsyncIterator[None]:
    state = app[PROTOCOL_STATE]
    shortest = min(state.stream_idle_timeout, state.transaction_timeout or float("inf"))
    interval = min(1.0, max(0.02, shortest / 4))
    # Owned by this cleanup context: cancelled and awaited below, never left behind.
    reaper = asyncio.get_running_loop().create_task(_reap_forever(state, interval))
    try:
        yield
    finally:
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
        await state.close_all()


async def _reap_forever(state: ProtocolServerState, interval: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            await state.reap_idle(loop.time())
        except Exception:  # noqa: BLE001  # logged; the reaper must outlive one failure
            _log.exception("closing idle streams failed; will retry")


# --- HTTP plumbing -------------------------------------------------------------------------


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if code is not None:
        body["code"] = code
    return web.json_response(body, status=status)


@web.middleware
async def _count_and_map_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route = request.match_info.route.name
    if route is not None:
        request.app[PROTOCOL_STATE].counts.record(
            route.removeprefix("db-").removeprefix("root.").replace(".", "/"),
            request.match_info.get("name", ROOT_NAME if route.startswith("root.") else None),
        )
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except Exception:  # noqa: BLE001  # logged; the client gets a JSON 500, not a traceback
        _log.exception("unexpected error serving %s %s", request.method, request.path)
        return _error(500, "internal error in the local protocol server; see its log")


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def _version(request: web.Request) -> web.Response:
    return web.Response(text=SERVER_VERSION)


async def _authorized(request: web.Request) -> tuple[str, Access] | web.Response:
    name = request.match_info.get("name", ROOT_NAME)  # the root routes of root_database
    state = request.app[PROTOCOL_STATE]
    if not DATABASE_NAME.match(name):
        return _error(404, f"no database named {name!r} (names are 1-64 of a-z, 0-9, '-')")
    access = await state.authorize(_bearer_token(request), name)
    if access is None:
        return _error(401, f"the token does not grant access to database {name!r}")
    return name, access


async def _acquire(
    request: web.Request, baton: str | None, database: str, access: Access
) -> Stream | web.Response:
    """The stream a request continues (or a new one), or the HTTP error to answer with."""
    state = request.app[PROTOCOL_STATE]
    now = asyncio.get_running_loop().time()
    if baton is None:
        if not state.database_exists(database) and not state.create_on_demand:
            return _error(404, f"database {database!r} does not exist")
        match await state.open_stream(database, access, now):
            case Ok(stream):
                return stream
            case Err(error):
                status = 404 if error.code == "NOT_FOUND" else 503
                return _error(status, error.message, error.code)
    found = state.find_stream(baton, database, now)
    await state.close_pending()
    match found:
        case StreamRefusal.EXPIRED:
            return _error(
                400,
                f"the stream expired after {state.stream_idle_timeout:g} s idle; "
                "open a new stream (baton null)",
                "STREAM_EXPIRED",
            )
        case StreamRefusal.UNKNOWN | StreamRefusal.OTHER_DATABASE:
            return _error(
                400,
                "unknown baton: it names no open stream of this database "
                "(a baton is good for one request only)",
                "BATON_INVALID",
            )
        case Stream() as stream:
            if stream.access is Access.READ_WRITE and access is Access.READ_ONLY:
                return _error(403, "a read-only token cannot continue a read-write stream")
            return stream


def _baton_still_current(stream: Stream, baton: str | None) -> bool:
    # Two requests may race with the same baton; only the first to take the lock wins.
    return not stream.closed and (baton is None or stream.baton == baton)


# --- pipeline ------------------------------------------------------------------------------


async def _pipeline_v2(request: web.Request) -> web.Response:
    return await _pipeline(request, version=2)


async def _pipeline_v3(request: web.Request) -> web.Response:
    return await _pipeline(request, version=3)


class _Batoned(Protocol):
    @property
    def baton(self) -> str | None: ...


_M = TypeVar("_M", bound=_Batoned)


async def _decoded(
    request: web.Request, decode: Callable[[bytes], _M], what: str
) -> tuple[str, Access, _M] | web.Response:
    """Authorize and decode the body."""
    authorized = await _authorized(request)
    if isinstance(authorized, web.Response):
        return authorized
    database, access = authorized
    try:
        message = decode(await request.read())
    except ProtocolError as exc:
        return _error(400, f"malformed {what} request: {exc}", "PROTOCOL_ERROR")
    return database, access, message


async def _stream_for(
    request: web.Request, decode: Callable[[bytes], _M], what: str
) -> tuple[Stream, _M] | web.Response:
    """Authorize, decode the body, and find (or open) the stream its baton names."""
    decoded = await _decoded(request, decode, what)
    if isinstance(decoded, web.Response):
        return decoded
    database, access, message = decoded
    acquired = await _acquire(request, message.baton, database, access)
    if isinstance(acquired, web.Response):
        return acquired
    return acquired, message


async def _pipeline(request: web.Request, *, version: int) -> web.Response:
    decoded = await _decoded(request, decode_pipeline_request, "pipeline")
    if isinstance(decoded, web.Response):
        return decoded
    database, access, pipeline = decoded
    requests = pipeline.requests
    if pipeline.baton is None and requests and isinstance(requests[-1], CloseRequest):
        return await _one_shot(request, database, access, requests, version)
    acquired = await _acquire(request, pipeline.baton, database, access)
    if isinstance(acquired, web.Response):
        return acquired
    stream = acquired
    state = request.app[PROTOCOL_STATE]
    async with stream.lock:
        if not _baton_still_current(stream, pipeline.baton):
            return _error(400, "unknown baton: it was already used", "BATON_INVALID")
        requests = pipeline.requests
        if stream.transaction_timed_out:
            stream.transaction_timed_out = False
            ran: tuple[StreamResult, ...] = tuple(_TIMED_OUT for _ in requests)
        else:
            # One job on the stream's thread for the whole pipeline: one hop, not one per
            # request; it also says whether a transaction is left open.
            async with _dropped_if_cancelled(state, stream):
                ran, in_transaction = await stream.worker.run(
                    lambda conn: (
                        run_stream_requests(conn, requests, stream.stored_sql, version=version),
                        conn.in_transaction,
                    )
                )
            stream.ran(in_transaction=in_transaction, now=asyncio.get_running_loop().time())
        results = [explain_refusals(stream.access, stream.database, r) for r in ran]
        if pipeline.requests and isinstance(pipeline.requests[-1], CloseRequest):
            await state.close_stream(stream)
            next_baton = None
        else:
            next_baton = state.rotate_baton(stream, asyncio.get_running_loop().time())
    body = encode_pipeline_response(
        PipelineResponse(baton=next_baton, base_url=None, results=tuple(results))
    )
    return web.Response(body=body, content_type="application/json")


async def _one_shot(
    request: web.Request,
    database: str,
    access: Access,
    requests: tuple[StreamRequest, ...],
    version: int,
) -> web.Response:
    """A pipeline that opens its stream and closes it in one request, which is what
    clients send for a plain query: no baton, no stream to register, and a connection
    borrowed from the idle ones of its database (one thread hand-off, no SQLite open)."""
    state = request.app[PROTOCOL_STATE]
    match await state.borrow(database, access):
        case Ok(worker):
            pass
        case Err(error):
            status = 404 if error.code == "NOT_FOUND" else 503
            return _error(status, error.message, error.code)
    read_only = access is Access.READ_ONLY
    reusable = False
    try:
        ran, reusable = await worker.run(
            lambda conn: run_and_reset(conn, requests, version=version, read_only=read_only)
        )
    finally:
        # Cancelled (the client left) or failed: the interrupted connection is closed.
        with anyio.CancelScope(shield=True):
            await state.give_back(
                database,
                access,
                worker,
                reusable=reusable,
                now=asyncio.get_running_loop().time(),
            )
    results = tuple(explain_refusals(access, database, result) for result in ran)
    body = encode_pipeline_response(PipelineResponse(baton=None, base_url=None, results=results))
    return web.Response(body=body, content_type="application/json")


_TIMED_OUT = StreamError(error=TRANSACTION_TIMED_OUT)


@contextlib.asynccontextmanager
async def _dropped_if_cancelled(state: ProtocolServerState, stream: Stream) -> AsyncIterator[None]:
    """The client went away (or the server is stopping) while the stream's SQL ran: the
    cancellation interrupted the statement, and nobody holds the next baton, so the
    stream, and any transaction on it, go now rather than at its idle expiry."""
    try:
        yield
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            await state.close_stream(stream)
        raise


# --- cursor --------------------------------------------------------------------------------


async def _cursor(request: web.Request) -> web.StreamResponse:
    found = await _stream_for(request, decode_cursor_request, "cursor")
    if isinstance(found, web.Response):
        return found
    stream, cursor = found
    state = request.app[PROTOCOL_STATE]
    async with stream.lock:
        if not _baton_still_current(stream, cursor.baton):
            return _error(400, "unknown baton: it was already used", "BATON_INVALID")
        stored = dict(stream.stored_sql)
        batch = cursor.batch
        async with _dropped_if_cancelled(state, stream):
            ran, in_transaction = await stream.worker.run(
                lambda conn: (execute_batch(conn, batch, stored), conn.in_transaction)
            )
        stream.ran(in_transaction=in_transaction, now=asyncio.get_running_loop().time())
        next_baton = state.rotate_baton(stream, asyncio.get_running_loop().time())
    lines = [encode_cursor_header(CursorHeader(baton=next_baton, base_url=None))]
    match ran:
        case Err(error):
            lines.append(encode_cursor_entry(CursorErrorEntry(error=error)))
        case Ok(result):
            readable = (
                explain_batch(stream.database, result)
                if stream.access is Access.READ_ONLY
                else result
            )
            lines.extend(_cursor_lines(stream, readable))
    return web.Response(body=b"".join(lines), content_type="application/x-ndjson")


def _cursor_lines(stream: Stream, result: BatchResult) -> list[bytes]:
    lines: list[bytes] = []
    steps = zip(result.step_results, result.step_errors, strict=True)
    for index, (step_result, step_error) in enumerate(steps):
        if step_error is not None:
            lines.append(encode_cursor_entry(StepErrorEntry(step=index, error=step_error)))
        elif step_result is not None:
            lines.append(encode_cursor_entry(StepBeginEntry(step=index, cols=step_result.cols)))
            lines.extend(encode_cursor_entry(RowEntry(row=row)) for row in step_result.rows)
            lines.append(
                encode_cursor_entry(
                    StepEndEntry(
                        affected_row_count=step_result.affected_row_count,
                        last_insert_rowid=step_result.last_insert_rowid,
                        rows_read=step_result.rows_read,
                        rows_written=step_result.rows_written,
                    )
                )
            )
    return lines
