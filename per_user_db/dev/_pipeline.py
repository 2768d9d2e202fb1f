"""Answering a pipeline request, whichever HTTP reader read it (the front door or aiohttp).

Nothing here speaks HTTP: a request comes in as a :class:`~._front.PipelineCall` and
goes out as a status and a JSON body (:data:`Reply`). It authorizes the token, decodes
the body, and either runs a one-shot pipeline on a kept connection (on the event loop's
thread when :mod:`._inline` allows, else on the connection's worker) or continues the
stream its baton names. ``_server.py`` maps aiohttp's requests onto it and serves the
cursor route with the same stream helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, TypeAlias

import anyio
import apsw

from per_user_db.core._hrana import (
    BatchRequest,
    BatchResponse,
    BatchResult,
    CloseRequest,
    ExecuteRequest,
    HranaError,
    PipelineResponse,
    ProtocolError,
    SequenceRequest,
    StreamError,
    StreamOk,
    decode_pipeline_request,
    encode_pipeline_response,
)
from per_user_db.core._result import Err, Ok
from per_user_db.dev._engine import run_stream_request, run_stream_requests
from per_user_db.dev._inline import (
    INLINE_BUDGET,
    INLINE_VALUE,
    PipelineFacts,
    argument_shape,
    inspect,
)
from per_user_db.dev._state import (
    DATABASE_NAME,
    ROOT_NAME,
    Access,
    ProtocolServerState,
    Stream,
    StreamRefusal,
    explain_refusals,
    roll_back,
    transaction_timed_out,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable

    from per_user_db.core._hrana import StreamRequest, StreamResult
    from per_user_db.dev._engine import ServerWorker
    from per_user_db.dev._front import PipelineCall

__all__ = [
    "Reply",
    "acquire_stream",
    "answer_pipeline",
    "authorized",
    "baton_still_current",
    "dropped_if_cancelled",
    "refusal",
]


Reply: TypeAlias = tuple[int, bytes]
"""An HTTP status and its JSON body, for the front door and aiohttp alike."""


def refusal(status: int, message: str, code: str | None = None) -> Reply:
    body: dict[str, str] = {"error": message}
    if code is not None:
        body["code"] = code
    return status, json.dumps(body).encode()


async def authorized(
    state: ProtocolServerState, name: str, token: str | None
) -> tuple[str, Access] | Reply:
    if not DATABASE_NAME.match(name):
        return refusal(404, f"no database named {name!r} (names are 1-64 of a-z, 0-9, '-')")
    access = await state.authorize(token, name)
    if access is None:
        return refusal(401, f"the token does not grant access to database {name!r}")
    return name, access


async def acquire_stream(
    state: ProtocolServerState, baton: str | None, database: str, access: Access
) -> Stream | Reply:
    """The stream a request continues (or a new one), or the HTTP error to answer with."""
    now = asyncio.get_running_loop().time()
    if baton is None:
        if not state.database_exists(database) and not state.create_on_demand:
            return refusal(404, f"database {database!r} does not exist")
        match await state.open_stream(database, access, now):
            case Ok(stream):
                return stream
            case Err(error):
                status = 404 if error.code == "NOT_FOUND" else 503
                return refusal(status, error.message, error.code)
    found = state.find_stream(baton, database, now)
    await state.close_pending()
    match found:
        case StreamRefusal.EXPIRED:
            return refusal(
                400,
                f"the stream expired after {state.stream_idle_timeout:g} s idle; "
                "open a new stream (baton null)",
                "STREAM_EXPIRED",
            )
        case StreamRefusal.UNKNOWN | StreamRefusal.OTHER_DATABASE:
            return refusal(
                400,
                "unknown baton: it names no open stream of this database "
                "(a baton is good for one request only)",
                "BATON_INVALID",
            )
        case Stream() as stream:
            if stream.access is Access.READ_WRITE and access is Access.READ_ONLY:
                return refusal(403, "a read-only token cannot continue a read-write stream")
            return stream


def baton_still_current(stream: Stream, baton: str | None) -> bool:
    # Two requests may race with the same baton; only the first to take the lock wins.
    return not stream.closed and (baton is None or stream.baton == baton)


async def answer_pipeline(state: ProtocolServerState, call: PipelineCall) -> Reply:
    """The status and JSON body answering a pipeline request (both HTTP paths)."""
    granted = await authorized(state, call.database or ROOT_NAME, call.token)
    if isinstance(granted[1], bytes):
        return granted
    database, access = granted
    try:
        pipeline = decode_pipeline_request(call.body)
    except ProtocolError as exc:
        return refusal(400, f"malformed pipeline request: {exc}", "PROTOCOL_ERROR")
    requests = pipeline.requests
    version = call.version
    if pipeline.baton is None and requests and isinstance(requests[-1], CloseRequest):
        return await _one_shot(state, database, access, requests, version)
    acquired = await acquire_stream(state, pipeline.baton, database, access)
    if not isinstance(acquired, Stream):
        return acquired
    stream = acquired
    async with stream.lock:
        if not baton_still_current(stream, pipeline.baton):
            return refusal(400, "unknown baton: it was already used", "BATON_INVALID")
        # The server rolled the stream's transaction back since its last request: the
        # next program (execute, batch or sequence) fails with TRANSACTION_TIMEOUT, as
        # on sqld (connection_core.rs, forced_rollback); everything else runs.
        timed_out: int | None = None
        if stream.transaction_timed_out:
            timed_out = next((i for i, r in enumerate(requests) if _is_program(r)), None)
            stream.transaction_timed_out = timed_out is None
        error = transaction_timed_out(state.transaction_timeout)
        # One job on the stream's thread for the whole pipeline: one hop, not one per
        # request; it also says whether a transaction is left open.
        async with dropped_if_cancelled(state, stream):
            ran, in_transaction = await stream.worker.run(
                lambda conn: (
                    _run_stream(conn, requests, stream.stored_sql, version, timed_out, error),
                    conn.in_transaction,
                )
            )
        stream.ran(in_transaction=in_transaction, now=asyncio.get_running_loop().time())
        results = [explain_refusals(stream.access, stream.database, r) for r in ran]
        if requests and isinstance(requests[-1], CloseRequest):
            await state.close_stream(stream)
            next_baton = None
        else:
            next_baton = state.rotate_baton(stream, asyncio.get_running_loop().time())
    body = encode_pipeline_response(
        PipelineResponse(baton=next_baton, base_url=None, results=tuple(results))
    )
    return 200, body


async def _one_shot(
    state: ProtocolServerState,
    database: str,
    access: Access,
    requests: tuple[StreamRequest, ...],
    version: int,
) -> Reply:
    """A pipeline that opens its stream and closes it in one request, which is what
    clients send for a plain query: no baton, no stream to register, and a connection
    borrowed from the idle ones of its database. It runs on the event loop's thread
    when it can be run again (see :mod:`._inline`), else on the connection's worker."""
    match await state.borrow(database, access):
        case Ok(worker):
            pass
        case Err(error):
            status = 404 if error.code == "NOT_FOUND" else 503
            return refusal(status, error.message, error.code)
    facts = inspect(requests)
    # What FastPipelines knows the pipeline by: its SQL and the sizes of its arguments.
    memo_key = (facts.key, argument_shape(requests)) if facts.restartable else None
    reusable = False
    try:
        done = _run_inline(state, worker, requests, facts, memo_key, version)
        if done is None:
            ran, reusable, seconds = await worker.run(
                lambda conn: _fresh_then_run(conn, requests, version, facts)
            )
            if memo_key is not None:
                state.fast_pipelines.note(memo_key, seconds)
        else:
            ran, reusable = done
    finally:
        unwanted = state.take_back(
            database, access, worker, reusable=reusable, now=asyncio.get_running_loop().time()
        )
        if unwanted is not None:
            # Cancelled (the client left) or failed: the interrupted connection is closed.
            with anyio.CancelScope(shield=True):
                await unwanted.close()
    results = tuple(explain_refusals(access, database, result) for result in ran)
    body = encode_pipeline_response(PipelineResponse(baton=None, base_url=None, results=results))
    return 200, body


def _run_inline(
    state: ProtocolServerState,
    worker: ServerWorker,
    requests: tuple[StreamRequest, ...],
    facts: PipelineFacts,
    memo_key: Hashable | None,
    version: int,
) -> tuple[tuple[StreamResult, ...], bool] | None:
    """The pipeline's results, and whether its connection may be kept, if it ran here,
    on the loop's thread, within the budget; None if it must run on the worker (it ran
    not at all, or was interrupted or met a lock, and nothing it did remains)."""
    if not state.inline or memo_key is None or memo_key not in state.fast_pipelines:
        return None  # never inline, or not known to be fast: to the worker, which times it
    if not worker.idle:
        return None

    def job(conn: apsw.Connection) -> tuple[tuple[StreamResult, ...], bool] | None:
        results: list[StreamResult] = []
        stored: dict[int, str] = {}
        # One SQLite instruction may take time in proportion to the values it works on
        # (instr, replace, LIKE over stored texts), and the budget is only checked
        # between instructions: inline, no value may be longer than INLINE_VALUE.
        longest = conn.limit(apsw.SQLITE_LIMIT_LENGTH, INLINE_VALUE)
        try:
            for request in requests:
                result = run_stream_request(conn, request, stored, version=version)
                results.append(result)
                if _failed_with(result, _STOPPED_INLINE):
                    return None  # interrupted, met a lock or a long value: nothing after
        finally:
            conn.limit(apsw.SQLITE_LIMIT_LENGTH, longest)
        # Done and kept: an interrupt during the reset must not undo the answer.
        conn.set_progress_handler(None, 0)
        return tuple(results), _reset(conn, facts)

    started = time.perf_counter()
    outcome = worker.run_inline(job, budget=INLINE_BUDGET)
    if outcome is None:
        state.fast_pipelines.note(memo_key, float("inf"))  # to a worker from now on
    else:  # it may have finished over the budget, inside one long instruction
        state.fast_pipelines.note(memo_key, time.perf_counter() - started)
    return outcome


def _fresh_then_run(
    conn: apsw.Connection,
    requests: tuple[StreamRequest, ...],
    version: int,
    facts: PipelineFacts,
) -> tuple[tuple[StreamResult, ...], bool, float]:
    """On the worker: the results, whether the connection may be kept, and the seconds
    the SQL took (which decide whether the same SQL may run inline next time)."""
    roll_back(conn)  # what an interrupted inline attempt may have left open
    started = time.perf_counter()
    results = run_stream_requests(conn, requests, {}, version=version)
    seconds = time.perf_counter() - started
    return results, _reset(conn, facts), seconds


def _reset(conn: apsw.Connection, facts: PipelineFacts) -> bool:
    """Leave the connection as a new one is; False if it must not serve another
    pipeline (it may carry a pragma's setting, or the reset failed)."""
    if facts.touches_pragmas:
        return False
    try:
        roll_back(conn)
        # The next client's last_insert_rowid() starts at 0, as on a new connection.
        conn.set_last_insert_rowid(0)
        if facts.touches_temp:
            temporary = conn.execute("SELECT count(*) FROM temp.sqlite_master").get
            return bool(temporary == 0)  # temp tables, views or triggers must not leak
    except apsw.Error:
        return False
    return True


def _failed_with(result: StreamResult, codes: frozenset[str]) -> bool:
    match result:
        case StreamError(error=error):
            return error.code in codes
        case StreamOk(response=BatchResponse(result=batch)):
            return any(e is not None and e.code in codes for e in batch.step_errors)
        case _:
            return False


_STOPPED_INLINE = frozenset(
    {"SQLITE_INTERRUPT", "SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", "SQLITE_LOCKED", "SQLITE_TOOBIG"}
)


def _is_program(request: StreamRequest) -> bool:
    return isinstance(request, ExecuteRequest | BatchRequest | SequenceRequest)


def _run_stream(
    conn: apsw.Connection,
    requests: tuple[StreamRequest, ...],
    stored: dict[int, str],
    version: int,
    timed_out: int | None,
    error: HranaError,
) -> tuple[StreamResult, ...]:
    """Run a stream's pipeline; request ``timed_out`` (if any) fails instead, each of its
    steps if it is a batch."""
    if timed_out is None:
        return run_stream_requests(conn, requests, stored, version=version)
    results: list[StreamResult] = []
    for index, request in enumerate(requests):
        if index != timed_out:
            results.append(run_stream_request(conn, request, stored, version=version))
        elif isinstance(request, BatchRequest):
            steps = len(request.batch.steps)
            failed = BatchResult(step_results=(None,) * steps, step_errors=(error,) * steps)
            results.append(StreamOk(response=BatchResponse(result=failed)))
        else:
            results.append(StreamError(error=error))
    return tuple(results)


@contextlib.asynccontextmanager
async def dropped_if_cancelled(state: ProtocolServerState, stream: Stream) -> AsyncIterator[None]:
    """The client went away (or the server is stopping) while the stream's SQL ran: the
    cancellation interrupted the statement, and nobody holds the next baton, so the
    stream, and any transaction on it, go now rather than at its idle expiry."""
    try:
        yield
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            await state.close_stream(stream)
        raise
