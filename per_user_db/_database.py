"""The connection object: libsql-client's ``Client`` interface over our transports.

``Database`` returns libsql-client's own ``ResultSet``/``Row`` values and raises its
``LibsqlError`` (our :class:`DatabaseError` subclass), so code written for libsql-client
keeps working; what changes is what is underneath: Turso's current HTTP protocol, a
non-blocking local SQLite, or libsql-client's WebSocket transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from libsql_client import Client, ResultSet, Row, Statement, Transaction

from ._rows import RowModel
from ._transports._base import DatabaseError
from .core._deferred import guarded_atomic_batch, guarded_execute
from .core._errors import ConnectErrorCode
from .core._hrana import (
    BatchRequest,
    BatchResponse,
    CloseRequest,
    ExecuteRequest,
    ExecuteResponse,
    Stmt,
    StmtResult,
    StreamError,
    StreamOk,
    Value,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from types import TracebackType

    from libsql_client import InArgs, InStatement

    from ._deferred import DeferredCheck
    from ._rows import Model
    from ._transports._base import Stream, Transport
    from .core._hrana import BatchResult, HranaError, StreamRequest, StreamResult
    from .core._urls import DatabaseUrl

__all__ = ["Database", "DatabaseTransaction", "TransactionMode", "to_result_set", "to_stmt"]

TransactionMode = Literal["write", "read", "deferred"]
_BEGIN: dict[str, str] = {
    "write": "BEGIN IMMEDIATE",
    "read": "BEGIN TRANSACTION READONLY",
    "deferred": "BEGIN DEFERRED",
}


def _value(value: object) -> Value:
    """libsql-client's input conversions: bool → int, datetime → epoch ms, buffers → bytes."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(
        f"cannot bind a value of type {type(value).__name__}; "
        "use None, int, float, str, bytes, bool or datetime"
    )


def to_stmt(stmt: InStatement, args: InArgs = None, *, want_rows: bool = True) -> Stmt:
    """Convert libsql-client's statement forms (``str``, tuple, ``Statement``) to Hrana."""
    converted = Statement.convert(stmt, args)
    if not isinstance(converted.sql, str):
        raise TypeError(f"SQL must be a str, got {type(converted.sql).__name__}")
    raw_args: Any = converted.args
    if raw_args is None:
        return Stmt(sql=converted.sql, want_rows=want_rows)
    if isinstance(raw_args, dict):
        named = tuple(
            (name if name[:1] in (":", "@", "$") else f":{name}", _value(value))
            for name, value in raw_args.items()
        )
        return Stmt(sql=converted.sql, named_args=named, want_rows=want_rows)
    if isinstance(raw_args, list | tuple):
        return Stmt(sql=converted.sql, args=tuple(_value(v) for v in raw_args), want_rows=want_rows)
    raise TypeError(f"args must be a list, tuple or dict, got {type(raw_args).__name__}")


def to_result_set(result: StmtResult) -> ResultSet:
    columns = tuple(col.name or "" for col in result.cols)
    # The first column of a name wins, as in sqlite3.Row.
    index: dict[str, int] = {}
    for i, name in enumerate(columns):
        index.setdefault(name, i)
    rows = [Row(index, tuple(row)) for row in result.rows]
    return ResultSet(columns, rows, result.affected_row_count, result.last_insert_rowid)


def sql_error(error: HranaError) -> DatabaseError:
    return DatabaseError(error.message, error.code or "SQL_ERROR")


def _unexpected(what: str) -> DatabaseError:
    return DatabaseError.of(ConnectErrorCode.PROTOCOL_ERROR, f"the server answered {what}")


def expect_execute(result: StreamResult) -> StmtResult:
    match result:
        case StreamOk(response=ExecuteResponse(result=stmt_result)):
            return stmt_result
        case StreamError(error=error):
            raise sql_error(error)
        case _:
            raise _unexpected("an execute request with another response type")


def expect_batch(result: StreamResult) -> BatchResult:
    match result:
        case StreamOk(response=BatchResponse(result=batch_result)):
            return batch_result
        case StreamError(error=error):
            raise sql_error(error)
        case _:
            raise _unexpected("a batch request with another response type")


def first_batch_error(result: BatchResult) -> tuple[int, HranaError] | None:
    for index, error in enumerate(result.step_errors):
        if error is not None:
            return index, error
    return None


class Database(Client):
    """An open user database. Use it as ``async with`` or call :meth:`close`.

    ``execute``/``batch``/``transaction`` as in libsql-client; ``batch`` is atomic. The
    ``repr`` shows the redacted URL only.
    """

    def __init__(self, transport: Transport, url: DatabaseUrl) -> None:
        self._transport = transport
        self._url = url
        self._closed = False
        self._deferred: DeferredCheck | None = None
        self.round_trips = 0
        """One-shot pipelines sent so far (each is one HTTP request, or one SQLite job)."""

    def defer_schema_check(self, check: DeferredCheck) -> None:
        """Let the next statements carry ``check``'s guard (``connect(..., lazy=True)``)."""
        self._deferred = check

    def _pending_guard(self) -> Stmt | None:
        return None if self._deferred is None else self._deferred.guard

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Database {self._url.display} {state}>"

    @property
    def url(self) -> str:
        """The URL this database was opened with, token redacted."""
        return self._url.display

    @property
    def parsed_url(self) -> DatabaseUrl:
        return self._url

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseError(f"{self._url.display} is closed", "CLIENT_CLOSED")

    async def pipeline(self, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        """Run raw Hrana requests on a fresh stream in one round trip (advanced use)."""
        return await self._send(requests, restartable=False)

    async def _send(
        self, requests: Sequence[StreamRequest], *, restartable: bool
    ) -> tuple[StreamResult, ...]:
        self._check_open()
        self.round_trips += 1
        return await self._transport.pipeline(requests, restartable=restartable)

    async def execute(self, stmt: InStatement, args: InArgs = None) -> ResultSet:
        return await self._execute(to_stmt(stmt, args))

    async def fetch(
        self, stmt: InStatement, args: InArgs = None, *, into: type[Model]
    ) -> list[Model]:
        """Run ``stmt`` and build an ``into`` (a dataclass, NamedTuple or TypedDict class)
        from each row, by column name; a column it does not declare, or a required field no
        column fills, is a ``TypeError``. ``into`` is checked before the statement runs."""
        model = RowModel.of(into)
        return model.build(await self.execute(stmt, args))

    async def _execute(self, converted: Stmt) -> ResultSet:
        guard = self._pending_guard()
        if guard is not None:
            request = BatchRequest(batch=guarded_execute(guard, converted))
            (result,) = await self._send([request], restartable=True)
            batch_result = expect_batch(result)
            if await self._settle_guard(batch_result, 0):
                return await self._execute(converted)
            outcome, error = batch_result.step_results[1], batch_result.step_errors[1]
            if error is not None:
                raise sql_error(error)
            if outcome is None:
                raise _unexpected("a batch with a skipped step but no error")
            return to_result_set(outcome)
        (result,) = await self._send([ExecuteRequest(stmt=converted)], restartable=True)
        return to_result_set(expect_execute(result))

    async def batch(self, stmts: list[InStatement]) -> list[ResultSet]:
        """Run ``stmts`` in one transaction, in one round trip: all commit or none do."""
        return await self._batch(tuple(to_stmt(s) for s in stmts))

    async def _batch(self, converted: tuple[Stmt, ...]) -> list[ResultSet]:
        guard = self._pending_guard()
        batch = guarded_atomic_batch(converted, guard=guard)
        (result,) = await self._send([BatchRequest(batch=batch)], restartable=True)
        batch_result = expect_batch(result)
        failure = first_batch_error(batch_result)
        # Step 1 is the guard; it does not run at all when BEGIN failed (busy, say),
        # and then the check stays pending and BEGIN's error is raised below.
        if guard is not None and await self._settle_guard(batch_result, 1):
            return await self._batch(converted)
        if failure is not None:
            raise sql_error(failure[1])
        first = 1 if guard is None else 2
        results = batch_result.step_results[first : first + len(converted)]
        if any(r is None for r in results):
            raise _unexpected("a batch with a skipped step but no error")
        return [to_result_set(r) for r in results if r is not None]

    async def _settle_guard(self, result: BatchResult, step: int) -> bool:
        """Settle the deferred check from a guarded batch whose guard is ``step``; True
        when the guard failed: nothing of the batch ran and the database has now been
        migrated, so the caller sends its statements again."""
        assert self._deferred is not None
        if result.step_results[step] is not None:
            self._deferred.held(self)
            return False
        if result.step_errors[step] is None:
            return False  # skipped: what it guards did not run either
        await self._deferred.settle(self)
        return True

    async def _settle_deferred(self) -> None:
        if self._pending_guard() is not None:
            assert self._deferred is not None
            await self._deferred.settle(self)

    def transaction(self, mode: TransactionMode = "write") -> DatabaseTransaction:
        """An interactive transaction on its own stream.

        Prefer ``async with db.transaction() as tx:``: leaving the block without
        :meth:`~DatabaseTransaction.commit` rolls back.
        """
        self._check_open()
        if mode not in _BEGIN:
            raise ValueError(f"mode must be one of {sorted(_BEGIN)}, got {mode!r}")
        return DatabaseTransaction(
            self._transport.stream(),
            begin=_BEGIN[mode],
            url=self._url,
            before_first=self._settle_deferred,
        )

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._transport.close()


class DatabaseTransaction(Transaction):
    """An interactive transaction: ``BEGIN`` goes with the first statement, no extra trip."""

    def __init__(
        self,
        stream: Stream,
        *,
        begin: str,
        url: DatabaseUrl,
        before_first: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._stream = stream
        self._begin = begin
        self._url = url
        # A deferred schema check is settled before the transaction's first statement.
        self._before_first = before_first
        self._started = False
        self._closed = False
        # One statement at a time: BEGIN must go with the first one, exactly once.
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<DatabaseTransaction {self._url.display} {'closed' if self._closed else 'open'}>"

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseError("the transaction is closed", "TRANSACTION_CLOSED")

    async def execute(self, stmt: InStatement, args: InArgs = None) -> ResultSet:
        request = ExecuteRequest(stmt=to_stmt(stmt, args))
        async with self._lock:
            self._check_open()
            if self._started:
                (result,) = await self._stream.send([request])
            else:
                if self._before_first is not None:
                    await self._before_first()
                begin, result = await self._stream.send(
                    [ExecuteRequest(stmt=Stmt(sql=self._begin, want_rows=False)), request]
                )
                expect_execute(begin)
                self._started = True
        return to_result_set(expect_execute(result))

    async def fetch(
        self, stmt: InStatement, args: InArgs = None, *, into: type[Model]
    ) -> list[Model]:
        """:meth:`Database.fetch` inside the transaction."""
        model = RowModel.of(into)
        return model.build(await self.execute(stmt, args))

    async def _finish(self, sql: str) -> None:
        async with self._lock:
            await self._finish_locked(sql)

    async def _finish_locked(self, sql: str) -> None:
        self._check_open()
        self._closed = True
        try:
            if self._started:
                # The statement and the stream's close travel together: one round trip.
                result, _ = await self._stream.send(
                    [ExecuteRequest(stmt=Stmt(sql=sql, want_rows=False)), CloseRequest()]
                )
                expect_execute(result)
        finally:
            await self._stream.close()

    async def commit(self) -> None:
        await self._finish("COMMIT")

    async def rollback(self) -> None:
        if not self._closed:
            await self._finish("ROLLBACK")

    def close(self) -> None:
        """Abandon the transaction without waiting: it is rolled back."""
        if not self._closed:
            self._closed = True
            self._stream.abandon()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> DatabaseTransaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._closed:
            return
        if exc is None:
            await self.rollback()
            return
        # Leaving on an exception (cancellation included): roll back if the stream can
        # still be used, and never let that attempt replace the exception in flight.
        with contextlib.suppress(DatabaseError):
            await self.rollback()
