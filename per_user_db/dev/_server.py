"""The local Hrana-over-HTTP server: SQLite files in a directory, served like Turso.

``DIR/<name>.db`` is served at ``http://HOST:PORT/db/<name>/`` with the routes Turso Cloud
answers today: ``POST v2/pipeline``, ``POST v3/pipeline``, ``POST v3/cursor``,
``GET health`` and ``GET version`` (the last two also at the root). SQL errors travel
in-band in 200 responses; HTTP-level errors carry ``{"error": "..."}`` bodies.

This module maps HTTP onto :mod:`._pipeline` (which answers pipelines, from the front
door of :mod:`._front` or from aiohttp), serves the cursor route, and runs the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from aiohttp import web

from per_user_db.core._hrana import (
    BatchResult,
    CursorErrorEntry,
    CursorHeader,
    ProtocolError,
    RowEntry,
    StepBeginEntry,
    StepEndEntry,
    StepErrorEntry,
    decode_cursor_request,
    encode_cursor_entry,
    encode_cursor_header,
)
from per_user_db.core._result import Err, Ok
from per_user_db.dev._engine import execute_batch
from per_user_db.dev._front import (
    FrontDoor,
    PipelineCall,
    front_door_safe,
    is_front_door_safe,
    sweep_forever,
)
from per_user_db.dev._pipeline import (
    Reply,
    acquire_stream,
    answer_pipeline,
    authorized,
    baton_still_current,
    dropped_if_cancelled,
    refusal,
)
from per_user_db.dev._state import (
    ROOT_NAME,
    Access,
    ProtocolServerState,
    Stream,
    allow_all,
    explain_batch,
)
from per_user_db.dev._websocket import add_websocket_route

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Awaitable, Callable

    from per_user_db.dev._state import Authorize

__all__ = [
    "MAX_BODY",
    "PROTOCOL_STATE",
    "SQL_LATENCY",
    "TLS_CONTEXT",
    "ServerAddress",
    "create_protocol_app",
    "protocol_state",
    "serve",
]

_log = logging.getLogger(__name__)

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

MAX_BODY = 1024**2
"""Bytes of request body accepted (aiohttp's default, which it answers with 413)."""

SQL_LATENCY: web.AppKey[Callable[[], float]] = web.AppKey("per_user_db.sql_latency")
"""Seconds to delay each SQL request by, read per request (the local Turso's
``--latency``); the front door has no middlewares to do it."""


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
    inline: bool = True,
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

    ``inline=False`` runs every pipeline on its connection's thread, never on the event
    loop's: a third slower for short queries, but no request can hold the loop up for
    the length of one SQLite instruction (see :mod:`._inline`).
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
        inline=inline,
    )
    app = web.Application(middlewares=[_count_and_map_errors], client_max_size=MAX_BODY)
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
    aiohttp_protocol = runner.server
    assert aiohttp_protocol is not None  # set by setup()
    state = app.get(PROTOCOL_STATE)
    doors: set[FrontDoor] = set()
    loop = asyncio.get_running_loop()
    if state is not None and all(is_front_door_safe(m) for m in app.middlewares):
        answer = _front_door_answer(state, app.get(SQL_LATENCY))
        root_routes = state.root_database is not None

        def accept() -> asyncio.Protocol:
            return FrontDoor(
                answer, aiohttp_protocol, doors, max_body=MAX_BODY, root_routes=root_routes
            )

    else:  # a middleware the front door would skip: aiohttp reads everything

        def accept() -> asyncio.Protocol:
            return aiohttp_protocol()

    try:
        listener = await loop.create_server(accept, host, port, ssl=ssl_context)
    except BaseException:
        await runner.cleanup()
        raise
    # Owned by this block: cancelled and awaited below.
    sweeper = loop.create_task(sweep_forever(doors))
    try:
        bound_port = int(listener.sockets[0].getsockname()[1])
        yield ServerAddress(host=host, port=bound_port, tls=ssl_context is not None)
    finally:
        listener.close()
        sweeper.cancel()
        in_flight = [task for door in list(doors) if (task := door.abort()) is not None]
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        if in_flight:
            await asyncio.wait(in_flight, timeout=1.0)
        await runner.cleanup()


def _front_door_answer(
    state: ProtocolServerState, latency: Callable[[], float] | None
) -> Callable[[PipelineCall], Awaitable[Reply]]:
    async def answer(call: PipelineCall) -> Reply:
        name = call.database or ROOT_NAME
        state.counts.record(f"v{call.version}/pipeline", name)
        if latency is not None and (delay := latency()) > 0:
            await asyncio.sleep(delay)
        return await answer_pipeline(state, call)

    return answer


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
    return _response(refusal(status, message, code))


def _response(reply: Reply) -> web.Response:
    status, body = reply
    return web.Response(status=status, body=body, content_type="application/json")


@front_door_safe
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


# --- pipeline ------------------------------------------------------------------------------


async def _pipeline_v2(request: web.Request) -> web.Response:
    return await _pipeline(request, version=2)


async def _pipeline_v3(request: web.Request) -> web.Response:
    return await _pipeline(request, version=3)


async def _pipeline(request: web.Request, *, version: int) -> web.Response:
    call = PipelineCall(
        database=request.match_info.get("name"),
        version=version,
        token=_bearer_token(request),
        body=await request.read(),
        close=False,
    )
    return _response(await answer_pipeline(request.app[PROTOCOL_STATE], call))


class _Batoned(Protocol):
    @property
    def baton(self) -> str | None: ...


_M = TypeVar("_M", bound=_Batoned)


async def _stream_for(
    request: web.Request, decode: Callable[[bytes], _M], what: str
) -> tuple[Stream, _M] | Reply:
    """Authorize, decode the body, and find (or open) the stream its baton names."""
    state = request.app[PROTOCOL_STATE]
    name = request.match_info.get("name", ROOT_NAME)  # the root routes of root_database
    granted = await authorized(state, name, _bearer_token(request))
    if isinstance(granted[1], bytes):
        return granted
    database, access = granted
    try:
        message = decode(await request.read())
    except ProtocolError as exc:
        return refusal(400, f"malformed {what} request: {exc}", "PROTOCOL_ERROR")
    acquired = await acquire_stream(state, message.baton, database, access)
    if not isinstance(acquired, Stream):
        return acquired
    return acquired, message


# --- cursor --------------------------------------------------------------------------------


async def _cursor(request: web.Request) -> web.StreamResponse:
    found = await _stream_for(request, decode_cursor_request, "cursor")
    if not isinstance(found[0], Stream):
        return _response(found)
    stream, cursor = found
    state = request.app[PROTOCOL_STATE]
    async with stream.lock:
        if not baton_still_current(stream, cursor.baton):
            return _error(400, "unknown baton: it was already used", "BATON_INVALID")
        stored = dict(stream.stored_sql)
        batch = cursor.batch
        async with dropped_if_cancelled(state, stream):
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
