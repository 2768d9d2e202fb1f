"""Hrana over WebSocket for the local protocol server (subprotocols ``hrana2``, ``hrana1``).

Turso Cloud no longer speaks this, but a self-hosted libSQL server does, and it is what
libsql-client 0.3 uses for ``ws://`` URLs; serving it here lets our ``ws://`` transport be
tested against a real server. ``GET /db/<name>/`` (or ``/db/<name>``) upgrades to a
WebSocket; one socket is one Hrana *connection*:

* The client's first message is ``hello`` with its token (``jwt``); the server answers
  ``hello_ok``, or ``hello_error`` and closes. A later ``hello`` replaces the token for
  streams opened after it.
* Then ``request`` messages, each with a ``request_id``, answered by ``response_ok`` or
  ``response_error`` with the same id (in any order): ``open_stream``, ``close_stream``,
  ``execute``, ``batch``, and with ``hrana2`` also ``sequence``, ``describe``,
  ``store_sql`` and ``close_sql``.

Each stream owns a :class:`~per_user_db._transports._sqlite.SqliteWorker` (its own SQLite connection
and thread) and a queue drained by its own task, so one stream's requests run in the
order they arrived while different streams run concurrently. Unlike Hrana over HTTP,
stored SQL belongs to the connection, not to a stream. A stream request takes a snapshot
of the stored texts when it *arrives*, so ``store_sql`` and ``close_sql`` (answered at
once) take effect in the order the client sent them, whatever the streams are busy with.

Malformed messages (not JSON, no ``request_id``, a request before ``hello``, binary
frames) close the socket, as the protocol asks; a malformed or impossible request with a
readable ``request_id`` gets a ``response_error`` instead, which is kinder to debug.

Like HTTP streams, a stream idle longer than the server's ``stream_idle_timeout`` expires
(its connection closes, rolling back what it left open; later requests on it fail with
``STREAM_EXPIRED``), and a transaction held open longer than ``transaction_timeout`` is
rolled back (the next request fails with ``TRANSACTION_TIMEOUT``), so an abandoned
stream cannot block the database's other writers. They do not count towards
:attr:`ProtocolServerState.max_streams`: they are bounded per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, TypeAlias

import apsw
from aiohttp import WSCloseCode, WSMsgType, web

from per_user_db._transports._sqlite import SqliteWorker
from per_user_db.core._hrana import (
    BatchRequest,
    CloseSqlResponse,
    DescribeRequest,
    ExecuteRequest,
    HranaError,
    ProtocolError,
    SequenceRequest,
    StoreSqlResponse,
    StreamError,
    StreamOk,
    ValueNotRepresentable,
    decode_batch,
    decode_stmt,
    encode_error,
    encode_stream_response,
)
from per_user_db.dev._engine import hrana_error_from_apsw, run_stream_request
from per_user_db.dev._state import (
    DATABASE_NAME,
    ROOT_NAME,
    Access,
    explain_refusals,
    roll_back,
    transaction_timed_out,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from per_user_db.core._hrana import StreamRequest, StreamResponse, StreamResult
    from per_user_db.dev._engine import ServerWorker
    from per_user_db.dev._state import ProtocolServerState

__all__ = ["SUBPROTOCOLS", "add_websocket_route"]

_log = logging.getLogger(__name__)

SUBPROTOCOLS = ("hrana2", "hrana1")
"""Offered in preference order; a client that names none of them gets ``hrana1``."""

# Bounds on what one connection may hold: streams (each a thread and an SQLite
# connection), stored SQL texts, and requests waiting on one stream. A full stream queue
# stops reading the socket, which pushes back on the client instead of buffering forever.
_MAX_STREAMS = 128
_MAX_STORED_SQL = 1024
_MAX_QUEUED_PER_STREAM = 256

# aiohttp pings this often and drops a peer that stops answering, so a vanished client
# cannot hold a stream's SQLite connection (and perhaps a write lock) forever.
_HEARTBEAT_SECONDS = 30.0
# How long a close waits for the client's close frame; libsql-client never sends one.
_CLOSE_TIMEOUT_SECONDS = 1.0

_V2_ONLY = frozenset({"sequence", "describe", "store_sql", "close_sql"})


def add_websocket_route(app: web.Application, state: ProtocolServerState) -> None:
    """Serve Hrana over WebSocket at ``/db/{name}/`` (and ``/db/{name}``) in ``app``.

    Open sockets are closed when the app shuts down; otherwise the shutdown would wait
    for every client to leave by itself.
    """
    sockets: set[web.WebSocketResponse] = set()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _serve_socket(request, state, sockets)

    async def close_sockets(app: web.Application) -> None:
        # Side by side: each close may wait for a client that never answers it.
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets)
        )

    # One route for both spellings, so the request counts see a single "ws" route.
    app.router.add_get("/db/{name}{slash:/?}", handle, name="ws")
    if state.root_database is not None:
        app.router.add_get("/", handle, name="root.ws")
    app.on_shutdown.append(close_sockets)


async def _serve_socket(
    request: web.Request, state: ProtocolServerState, sockets: set[web.WebSocketResponse]
) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        protocols=SUBPROTOCOLS, heartbeat=_HEARTBEAT_SECONDS, timeout=_CLOSE_TIMEOUT_SECONDS
    )
    ready = ws.can_prepare(request)
    if not ready.ok:
        return web.json_response(
            {
                "error": "this URL speaks Hrana over WebSocket (subprotocol hrana2); connect "
                "with ws:// or POST to v2/pipeline or v3/pipeline under it"
            },
            status=400,
        )
    offered = request.headers.get("Sec-WebSocket-Protocol", "").strip()
    if offered and ready.protocol is None:
        # Silently falling back to hrana1 would confuse a client that asked only for,
        # say, hrana3; refusing the upgrade says what is wrong.
        return web.json_response(
            {"error": f"none of the subprotocols {offered!r} is spoken here; use hrana2"},
            status=400,
        )
    await ws.prepare(request)
    version = 1 if ready.protocol in (None, "hrana1") else 2
    database = request.match_info.get("name", ROOT_NAME)
    connection = _Connection(ws, state, database, version)
    sockets.add(ws)
    try:
        await connection.serve()
    except Exception:  # noqa: BLE001  # logged; the socket is closed with "internal error"
        _log.exception("Hrana WebSocket connection to %s failed", database)
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal server error")
    finally:
        sockets.discard(ws)
    return ws


# --- jobs a stream's task works through ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    request_id: int
    request: StreamRequest
    stored: dict[int, str]  # a copy of the connection's stored SQL when the request arrived


@dataclass(frozen=True, slots=True)
class _Close:
    request_id: int


_Job: TypeAlias = _Run | _Close


@dataclass(eq=False, slots=True)
class _Stream:
    stream_id: int
    access: Access
    jobs: asyncio.Queue[_Job] = field(
        default_factory=lambda: asyncio.Queue(maxsize=_MAX_QUEUED_PER_STREAM)
    )
    in_transaction_since: float | None = None
    transaction_timed_out: bool = False


_EXPIRED = HranaError(
    message="the stream expired after being idle longer than the server allows; open a new one",
    code="STREAM_EXPIRED",
)


class _Closed(Exception):
    """The server closed the socket because the client broke the protocol."""


# --- one connection --------------------------------------------------------------------------


class _Connection:
    def __init__(
        self, ws: web.WebSocketResponse, state: ProtocolServerState, database: str, version: int
    ) -> None:
        self._ws = ws
        self._state = state
        self._database = database
        self._version = version
        self._access: Access | None = None  # None until a hello succeeds
        self._streams: dict[int, _Stream] = {}
        self._stored: dict[int, str] = {}
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        """Answer messages until the client (or a protocol error) closes the socket."""
        async with asyncio.TaskGroup() as group:
            try:
                await self._receive_all(group)
            finally:
                # Closing the socket closes its streams; nobody waits for their answers,
                # and each task closes its SQLite connection (rolling back) as it ends.
                for task in self._tasks:
                    task.cancel()

    async def _receive_all(self, group: asyncio.TaskGroup) -> None:
        async for message in self._ws:
            try:
                match message.type:
                    case WSMsgType.TEXT:
                        await self._receive(message.data, group)
                    case WSMsgType.BINARY:
                        await self._close(
                            WSCloseCode.UNSUPPORTED_DATA, "Hrana messages are JSON text frames"
                        )
                    case _:  # ERROR (the peer broke the WebSocket framing)
                        return
            except _Closed:
                return

    async def _close(self, code: int, reason: str) -> NoReturn:
        # WebSocket close reasons are limited to 123 bytes.
        await self._ws.close(code=code, message=reason.encode()[:123])
        raise _Closed

    async def _protocol_error(self, reason: str) -> NoReturn:
        await self._close(WSCloseCode.PROTOCOL_ERROR, reason)

    async def _receive(self, text: str, group: asyncio.TaskGroup) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            await self._protocol_error("message is not valid JSON")
        except RecursionError:
            await self._protocol_error("message is nested too deeply")
        if not isinstance(message, dict):
            await self._protocol_error("message is not a JSON object")
        kind = message.get("type")
        if kind == "hello":
            await self._hello(message.get("jwt"))
            return
        if kind != "request":
            await self._protocol_error(f"unknown message type {kind!r} (expected hello, request)")
        if self._access is None:
            await self._protocol_error("the first message must be hello")
        request_id = message.get("request_id")
        body = message.get("request")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            await self._protocol_error("a request needs an integer request_id")
        if not isinstance(body, dict):
            await self._protocol_error("a request needs a request object")
        try:
            await self._request(request_id, body, group)
        except ProtocolError as exc:
            await self._respond_error(
                request_id, HranaError(message=str(exc), code="PROTOCOL_ERROR")
            )

    async def _hello(self, jwt: object) -> None:
        if jwt is not None and not isinstance(jwt, str):
            await self._protocol_error("hello.jwt must be a string or null")
        outcome = await self._authorize(jwt)
        if isinstance(outcome, HranaError):
            await self._send({"type": "hello_error", "error": encode_error(outcome)})
            await self._close(WSCloseCode.POLICY_VIOLATION, outcome.message)
        # A repeated hello (a refreshed token) applies to streams opened after it.
        self._access = outcome
        await self._send({"type": "hello_ok"})

    async def _authorize(self, token: str | None) -> Access | HranaError:
        """The same checks, in the same order, as an HTTP pipeline request."""
        name = self._database
        if not DATABASE_NAME.match(name):
            return HranaError(
                message=f"no database named {name!r} (names are 1-64 of a-z, 0-9, '-')",
                code="NOT_FOUND",
            )
        access = await self._state.authorize(token, name)
        if access is None:
            return HranaError(
                message=f"the token does not grant access to database {name!r}",
                code="UNAUTHORIZED",
            )
        if not self._state.database_exists(name) and not self._state.create_on_demand:
            return HranaError(message=f"database {name!r} does not exist", code="NOT_FOUND")
        return access

    async def _request(
        self, request_id: int, body: dict[str, object], group: asyncio.TaskGroup
    ) -> None:
        kind = body.get("type")
        if not isinstance(kind, str):
            raise ProtocolError("request.type: expected a string")
        if self._version < 2 and kind in _V2_ONLY:
            raise ProtocolError(f"request.type: {kind!r} needs subprotocol hrana2, not hrana1")
        match kind:
            case "open_stream":
                await self._open_stream(request_id, _int_field(body, "stream_id"), group)
            case "close_stream":
                stream = self._streams.pop(_int_field(body, "stream_id"), None)
                if stream is None:
                    # Nothing open under that id (a stream whose opening failed is still
                    # listed, so its close goes through the queue like any other).
                    await self._respond(request_id, {"type": "close_stream"})
                else:
                    await stream.jobs.put(_Close(request_id))
            case "store_sql":
                await self._store_sql(request_id, _int_field(body, "sql_id"), body.get("sql"))
            case "close_sql":
                self._stored.pop(_int_field(body, "sql_id"), None)
                await self._respond_ok(request_id, CloseSqlResponse())
            case "execute" | "batch" | "sequence" | "describe":
                stream_id = _int_field(body, "stream_id")
                request = _decode_stream_request(kind, body)
                target = self._streams.get(stream_id)
                if target is None:
                    await self._respond_error(
                        request_id,
                        HranaError(
                            message=f"stream {stream_id} is not open (send open_stream first)",
                            code="STREAM_NOT_FOUND",
                        ),
                    )
                    return
                await target.jobs.put(_Run(request_id, request, dict(self._stored)))
            case _:
                raise ProtocolError(f"request.type: unknown request type {kind!r}")

    async def _open_stream(self, request_id: int, stream_id: int, group: asyncio.TaskGroup) -> None:
        refusal: HranaError | None = None
        if stream_id in self._streams:
            refusal = HranaError(
                message=f"stream {stream_id} is already open; close_stream it first",
                code="STREAM_EXISTS",
            )
        elif len(self._streams) >= _MAX_STREAMS:
            refusal = HranaError(
                message=f"too many open streams on this connection ({_MAX_STREAMS}); close "
                "streams you no longer use",
                code="TOO_MANY_STREAMS",
            )
        if refusal is not None:
            await self._respond_error(request_id, refusal)
            return
        assert self._access is not None  # requests are refused before hello
        stream = _Stream(stream_id, self._access)
        self._streams[stream_id] = stream
        # The task opens the SQLite connection itself, so the receive loop never waits
        # for a thread to start and later requests queue behind the opening in order.
        task = group.create_task(self._run_stream(stream, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store_sql(self, request_id: int, sql_id: int, sql: object) -> None:
        if not isinstance(sql, str):
            raise ProtocolError("request.sql: expected a string")
        error: HranaError | None = None
        if sql_id in self._stored:
            error = HranaError(
                message=f"SQL id {sql_id} is already stored on this connection; close_sql it first",
                code="SQL_EXISTS",
            )
        elif len(self._stored) >= _MAX_STORED_SQL:
            error = HranaError(
                message=f"too many stored SQL texts ({_MAX_STORED_SQL}); close_sql unused ones",
                code="SQL_STORE_FULL",
            )
        if error is not None:
            await self._respond_error(request_id, error)
            return
        self._stored[sql_id] = sql
        await self._respond_ok(request_id, StoreSqlResponse())

    # --- a stream's task -------------------------------------------------------------------

    async def _run_stream(self, stream: _Stream, open_request_id: int) -> None:
        opened = await self._open_worker(stream.access)
        if isinstance(opened, HranaError):
            await self._respond_error(open_request_id, opened)
        else:
            await self._respond(open_request_id, {"type": "open_stream"})
        loop = asyncio.get_running_loop()
        try:
            while True:
                job = await self._next_job(stream, opened, loop)
                if job is None:  # idle too long: the stream is gone, its requests fail
                    if not isinstance(opened, HranaError):
                        await opened.close()
                    opened = _EXPIRED
                    continue
                match job:
                    case _Close(request_id=request_id):
                        if not isinstance(opened, HranaError):
                            # Closing the connection rolls back what the stream left open.
                            await opened.close()
                        await self._respond(request_id, {"type": "close_stream"})
                        return
                    case _Run(request_id=request_id):
                        if isinstance(opened, HranaError):
                            # Every request on a stream that failed to open fails the same way.
                            await self._respond_error(request_id, opened)
                        else:
                            await self._run(opened, stream, job)
        finally:
            if not isinstance(opened, HranaError):
                await opened.close()

    async def _open_worker(self, access: Access) -> ServerWorker | HranaError:
        """Like :meth:`ProtocolServerState.open_stream`, without registering a baton."""
        state, name = self._state, self._database
        if not state.database_exists(name):
            if not state.create_on_demand:
                return HranaError(message=f"database {name!r} does not exist", code="NOT_FOUND")
            await state.create_database(name)
        try:
            return await state.open_worker(name, access)
        except apsw.Error as exc:
            error = hrana_error_from_apsw(exc)
            return HranaError(
                message=f"cannot open database {name!r}: {error.message}", code=error.code
            )

    async def _next_job(
        self, stream: _Stream, opened: ServerWorker | HranaError, loop: asyncio.AbstractEventLoop
    ) -> _Job | None:
        """The stream's next job, rolling back a transaction held too long while waiting;
        None when the stream stayed idle past the server's idle timeout."""
        state = self._state
        idle_until = loop.time() + state.stream_idle_timeout
        while True:
            deadline = idle_until
            limit = state.transaction_timeout
            if stream.in_transaction_since is not None and limit is not None:
                deadline = min(deadline, stream.in_transaction_since + limit)
            try:
                async with asyncio.timeout_at(deadline):
                    return await stream.jobs.get()
            except TimeoutError:
                if loop.time() >= idle_until:
                    return None
                if isinstance(opened, SqliteWorker):
                    await opened.run(roll_back)
                stream.in_transaction_since = None
                stream.transaction_timed_out = True

    async def _run(self, worker: ServerWorker, stream: _Stream, job: _Run) -> None:
        request, stored = job.request, job.stored
        if stream.transaction_timed_out:
            stream.transaction_timed_out = False
            await self._respond_error(
                job.request_id, transaction_timed_out(self._state.transaction_timeout)
            )
            return
        try:
            # version=2: neither hrana1 nor hrana2 has the is_autocommit condition.
            result, in_transaction = await worker.run(
                lambda conn: (
                    run_stream_request(conn, request, stored, version=2),
                    conn.in_transaction,
                )
            )
            now = asyncio.get_running_loop().time()
            if not in_transaction:
                stream.in_transaction_since = None
            elif stream.in_transaction_since is None:
                stream.in_transaction_since = now
        except Exception:  # noqa: BLE001  # logged; the client gets an error, the stream lives
            _log.exception("running a Hrana request on stream %d failed", stream.stream_id)
            result = StreamError(
                error=HranaError(
                    message="internal error in the local protocol server; see its log",
                    code="INTERNAL_ERROR",
                )
            )
        await self._answer(job.request_id, explain_refusals(stream.access, self._database, result))

    # --- sending ---------------------------------------------------------------------------

    async def _answer(self, request_id: int, result: StreamResult) -> None:
        match result:
            case StreamOk(response=response):
                await self._respond_ok(request_id, response)
            case StreamError(error=error):
                await self._respond_error(request_id, error)

    async def _respond_ok(self, request_id: int, response: StreamResponse) -> None:
        try:
            encoded = encode_stream_response(response)
        except ValueNotRepresentable as exc:
            # SQLite can hold ±Inf, which Hrana JSON cannot carry.
            await self._respond_error(
                request_id,
                HranaError(
                    message=f"the result cannot be sent: {exc}", code="VALUE_NOT_REPRESENTABLE"
                ),
            )
            return
        await self._respond(request_id, encoded)

    async def _respond(self, request_id: int, response: dict[str, object]) -> None:
        await self._send({"type": "response_ok", "request_id": request_id, "response": response})

    async def _respond_error(self, request_id: int, error: HranaError) -> None:
        await self._send(
            {"type": "response_error", "request_id": request_id, "error": encode_error(error)}
        )

    async def _send(self, message: dict[str, object]) -> None:
        if self._ws.closed:
            return  # the client went away; its streams are being closed
        payload = json.dumps(message, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        # One frame at a time: stream tasks answer concurrently.
        # A socket closed while we waited for the lock has nobody left to tell.
        async with self._send_lock:
            with contextlib.suppress(ConnectionResetError):
                await self._ws.send_str(payload)


# --- decoding requests -----------------------------------------------------------------------


def _is_int(raw: object) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


def _int_field(body: Mapping[str, object], key: str) -> int:
    raw = body.get(key)
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ProtocolError(f"request.{key}: expected an integer")
    return raw


def _decode_stream_request(kind: str, body: Mapping[str, object]) -> StreamRequest:
    match kind:
        case "execute":
            return ExecuteRequest(stmt=decode_stmt(body.get("stmt"), "request.stmt"))
        case "batch":
            return BatchRequest(batch=decode_batch(body.get("batch"), "request.batch"))
        case _:  # "sequence" | "describe"
            sql, sql_id = body.get("sql"), body.get("sql_id")
            if sql is not None and not isinstance(sql, str):
                raise ProtocolError("request.sql: expected a string")
            if sql_id is not None and not _is_int(sql_id):
                raise ProtocolError("request.sql_id: expected an integer")
            if (sql is None) == (sql_id is None):
                raise ProtocolError("request: exactly one of sql and sql_id is required")
            assert sql_id is None or isinstance(sql_id, int)
            if kind == "sequence":
                return SequenceRequest(sql=sql, sql_id=sql_id)
            return DescribeRequest(sql=sql, sql_id=sql_id)
