"""SQLite behind the Hrana value types, without ever blocking the event loop.

Two halves:

* :class:`SqliteWorker` owns one ``sqlite3`` connection on one dedicated thread. Every
  call to the connection goes through :meth:`SqliteWorker.run`, which hands a function to
  that thread and awaits its result, so a slow query stalls no other task. Cancelling the
  awaiting task interrupts the running statement (``sqlite3_interrupt``), so the thread
  is free again quickly.
* Plain functions that run Hrana requests (:func:`execute_stmt`, :func:`execute_batch`,
  :func:`execute_sequence`, :func:`describe_sql`) on a connection. They are meant to be
  called *inside* ``worker.run`` and return ``Ok``/``Err`` values: an SQL error is an
  expected outcome that travels in-band, never an exception. This module is the one
  place where ``sqlite3`` exceptions become :class:`~per_user_db.core._hrana.HranaError`.

Used by the client's local transport. The local protocol server (``per_user_db.dev``)
runs its workers on APSW connections instead (``SqliteWorker.open(connect=...)``) with the
statement functions of ``per_user_db.dev._engine``; the batch and stream logic on top of
them (:class:`HranaEngine`) is this module's, shared by both.

Two limits of Python's ``sqlite3`` module shape the results here: it exposes neither
``sqlite3_column_decltype`` nor ``sqlite3_bind_parameter_name``, so result columns carry
``decltype=None`` and :func:`describe_sql` finds parameters with a small tokenizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pathlib
import queue
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from typing_extensions import TypeVar as DefaultTypeVar  # typing's takes a default from 3.13

from per_user_db.core._hrana import (
    AndCond,
    Batch,
    BatchRequest,
    BatchResponse,
    BatchResult,
    CloseRequest,
    CloseResponse,
    CloseSqlRequest,
    CloseSqlResponse,
    Col,
    DescribeParam,
    DescribeRequest,
    DescribeResponse,
    DescribeResult,
    ExecuteRequest,
    ExecuteResponse,
    GetAutocommitRequest,
    GetAutocommitResponse,
    HranaError,
    IsAutocommitCond,
    NotCond,
    OrCond,
    SequenceRequest,
    SequenceResponse,
    Stmt,
    StmtResult,
    StoreSqlRequest,
    StoreSqlResponse,
    StreamError,
    StreamOk,
    Value,
    condition_problem,
    evaluate_condition,
)
from per_user_db.core._result import Err, Ok

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from per_user_db.core._hrana import Cond, StreamRequest, StreamResponse, StreamResult

__all__ = [
    "SQLITE3",
    "Connector",
    "HranaEngine",
    "SqliteWorker",
    "WorkerClosedError",
    "WorkerConnection",
    "describe_sql",
    "execute_batch",
    "execute_sequence",
    "execute_stmt",
    "first_keyword",
    "hrana_error_from_sqlite",
    "resolve_sql",
    "roll_back",
    "run_stream_request",
    "run_stream_requests",
    "split_statements",
]

_T = TypeVar("_T")

DEFAULT_BUSY_TIMEOUT = 5.0


class WorkerConnection(Protocol):
    """What :class:`SqliteWorker` and :class:`HranaEngine` ask of a connection: both
    ``sqlite3.Connection`` and ``apsw.Connection`` have it."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, /) -> object: ...

    def set_progress_handler(self, handler: Callable[[], bool] | None, steps: int, /) -> None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


# A worker's connection type; a bare ``SqliteWorker`` is one of ``sqlite3``, the default.
_C = DefaultTypeVar("_C", bound=WorkerConnection, default=sqlite3.Connection)
_C_co = TypeVar("_C_co", bound=WorkerConnection, covariant=True)


class Connector(Protocol[_C_co]):
    """Opens the connection of a new worker (on the worker's thread)."""

    def __call__(
        self, target: str, *, read_only: bool, busy_timeout: float, create: bool
    ) -> _C_co: ...


class WorkerClosedError(RuntimeError):
    """:meth:`SqliteWorker.run` was called after :meth:`SqliteWorker.close`."""


@dataclass(slots=True, eq=False)
class _Job(Generic[_T]):
    fn: Callable[[], _T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[_T]
    # Set from the event loop when the awaiting task gives up, read by the worker thread
    # before it starts the job: a job nobody waits for is not worth running.
    abandoned: threading.Event = field(default_factory=threading.Event)


_STOP = None

# How many SQLite VM instructions run between two looks at the clock in run_inline.
_PROGRESS_STEPS = 1000

# Starting and joining a thread costs ~0.6 ms, twenty times the cost of opening a SQLite
# connection, and the protocol server opens a connection per stream. So workers run on
# carrier threads that outlive them: a worker's serve loop is one "session" on a carrier,
# and an idle carrier waits for the next worker. Connections are never reused.
_MAX_IDLE_CARRIERS = 32
_carriers_lock = threading.Lock()
_idle_carriers: list[_Carrier] = []


def _forget_carriers() -> None:
    # A forked child (gunicorn's preload, a test runner) inherits the list but not the
    # threads: its carriers would take sessions that never run.
    global _carriers_lock
    _carriers_lock = threading.Lock()
    _idle_carriers.clear()


os.register_at_fork(after_in_child=_forget_carriers)


class _Carrier:
    def __init__(self) -> None:
        self.sessions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="sqlite-worker", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.sessions.get()()
            with _carriers_lock:
                if len(_idle_carriers) >= _MAX_IDLE_CARRIERS:
                    return
                _idle_carriers.append(self)

    @staticmethod
    def take() -> _Carrier:
        with _carriers_lock:
            if _idle_carriers:
                return _idle_carriers.pop()
        return _Carrier()


class SqliteWorker(Generic[_C]):
    """One SQLite connection, used only from its own thread.

    Create with :meth:`open`; close with :meth:`close` (idempotent). Jobs run one at a
    time, in the order they were submitted, so a worker is also a lock around its
    connection. The connection is ``sqlite3``'s unless :meth:`open` is given another
    ``connect`` (the local server's APSW).
    """

    __slots__ = (
        "_busy_timeout_ms",
        "_busy_wait_off",
        "_closed",
        "_conn",
        "_current",
        "_guard",
        "_jobs",
        "_name",
        "_time_limit",
        "_unfinished",
    )

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job[object] | None] = queue.SimpleQueue()
        # Used on the worker thread, or on the event loop's by run_inline while the
        # worker has nothing queued or running.
        self._conn: _C | None = None
        self._current: _Job[object] | None = None
        self._guard = threading.Lock()  # orders "job finished" against "interrupt it"
        self._closed = False
        self._busy_timeout_ms = 0
        self._busy_wait_off = False  # run_inline turned SQLite's busy wait off
        # Jobs submitted and not yet done on the worker thread; counted on the loop's.
        self._unfinished = 0
        self._time_limit: float | None = None

    @overload
    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        create: bool = True,
        prepare: Callable[[sqlite3.Connection], None] | None = None,
        time_limit: float | None = None,
    ) -> SqliteWorker[sqlite3.Connection]: ...

    @overload
    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        connect: Connector[_C],
        read_only: bool = False,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        create: bool = True,
        prepare: Callable[[_C], None] | None = None,
        time_limit: float | None = None,
    ) -> SqliteWorker[_C]: ...

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        connect: Connector[Any] | None = None,
        read_only: bool = False,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        create: bool = True,
        prepare: Callable[[Any], None] | None = None,
        time_limit: float | None = None,
    ) -> SqliteWorker[Any]:
        """Open ``path`` (or ``":memory:"``) on a new worker thread.

        ``read_only`` sets ``PRAGMA query_only`` so every write fails with
        ``SQLITE_READONLY``; ``create=False`` fails instead of creating a missing file.
        ``prepare`` runs on the connection first, on its thread (the local server's guard).
        ``time_limit`` (seconds) interrupts a job still running after that long: its
        statement fails with ``SQLITE_INTERRUPT`` and the thread is free again.
        ``connect`` opens the connection (default: ``sqlite3`` with the settings above);
        it must apply those settings itself. Raises what ``connect`` raises
        (``sqlite3.Error``) if the database cannot be opened.
        """
        target = os.fspath(path)
        worker: SqliteWorker[Any] = cls(pathlib.Path(target).name or target)
        worker._time_limit = time_limit
        _Carrier.take().sessions.put(worker._serve)
        opener: Connector[Any] = _connect if connect is None else connect

        def open_connection() -> None:
            conn = opener(target, read_only=read_only, busy_timeout=busy_timeout, create=create)
            if prepare is not None:
                try:
                    prepare(conn)
                except BaseException:
                    conn.close()
                    raise
            worker._conn = conn
            worker._busy_timeout_ms = round(busy_timeout * 1000)

        try:
            await worker._submit(open_connection)
        except BaseException:
            worker._closed = True
            worker._jobs.put(_STOP)
            raise
        return worker

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, fn: Callable[[_C], _T]) -> _T:
        """Run ``fn(connection)`` on the worker thread and return its result.

        Exceptions raised by ``fn`` propagate. If the awaiting task is cancelled while
        ``fn`` runs, the running statement is interrupted (it fails inside ``fn`` with
        ``SQLITE_INTERRUPT``: ``sqlite3.OperationalError: interrupted``,
        ``apsw.InterruptError``) and the cancellation propagates at once.
        """
        if self._closed:
            raise WorkerClosedError(f"SQLite worker for {self._name} is closed")

        def call() -> _T:
            conn = self._conn
            if conn is None:
                raise WorkerClosedError(f"SQLite worker for {self._name} has no connection")
            if self._busy_wait_off:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                self._busy_wait_off = False
            return fn(conn)

        return await self._submit(call)

    @property
    def idle(self) -> bool:
        """Nothing submitted and unfinished (read on the event loop's thread)."""
        return self._unfinished == 0

    def run_inline(self, fn: Callable[[_C], _T], *, budget: float) -> _T | None:
        """Run ``fn(connection)`` here, on the event loop's thread, if it takes at most
        ``budget`` seconds; otherwise interrupt it and return None.

        For short statements a thread hand-off costs several times the work itself.
        Returns None at once, running nothing, while the worker has a job submitted and
        not finished. The caller must make sure that ``fn`` can run again on the worker
        after an interrupt: an interrupted
        statement is rolled back by SQLite, and once interrupted, later statements of
        ``fn`` (a batch's ROLLBACK) run unhindered. SQLite's busy wait is off meanwhile,
        so a lock held elsewhere fails at once with ``SQLITE_BUSY`` instead of blocking
        the loop; the caller sends such work to the worker, which waits.
        """
        conn = self._conn
        if self._unfinished or self._closed or conn is None:
            return None
        deadline = time.perf_counter() + budget
        interrupted = False

        def over_budget() -> bool:
            nonlocal interrupted
            if interrupted or time.perf_counter() < deadline:
                return False
            interrupted = True
            return True

        if not self._busy_wait_off:
            # Back on before the worker's next job (run): a run of inline statements,
            # the hot path, pays for the switch once.
            conn.execute("PRAGMA busy_timeout = 0")
            self._busy_wait_off = True
        conn.set_progress_handler(over_budget, _PROGRESS_STEPS)
        try:
            result = fn(conn)
        finally:
            conn.set_progress_handler(None, 0)
        return None if interrupted else result

    async def is_autocommit(self) -> bool:
        """True when the connection is outside a transaction."""
        return await self.run(lambda conn: not conn.in_transaction)

    async def close(self) -> None:
        """Close the connection and let the thread end; later calls do nothing.

        A statement still running is interrupted; a transaction still open is rolled back
        by SQLite when the connection closes.
        """
        if self._closed:
            return
        self._closed = True
        self._interrupt()  # a runaway statement must not hold the close up

        def disconnect() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        try:
            await self._submit(disconnect)
        finally:
            self._jobs.put(_STOP)

    async def _submit(self, fn: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        job: _Job[_T] = _Job(fn=fn, loop=loop, future=loop.create_future())
        self._unfinished += 1
        self._jobs.put(job)  # type: ignore[arg-type]  # the queue erases the job's type
        limit = None
        if self._time_limit is not None:
            limit = loop.call_later(self._time_limit, self._interrupt, job)
        try:
            return await job.future
        except asyncio.CancelledError:
            job.abandoned.set()
            self._interrupt(job)
            raise
        finally:
            if limit is not None:
                limit.cancel()

    def _interrupt(self, job: _Job[Any] | None = None) -> None:
        """Interrupt the running statement, if it belongs to ``job`` (None: any job)."""
        with self._guard:
            if self._current is not None and (job is None or self._current is job):
                conn = self._conn
                if conn is not None:
                    conn.interrupt()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            if job.abandoned.is_set():
                with contextlib.suppress(RuntimeError):  # the loop closed
                    job.loop.call_soon_threadsafe(self._settle, job.future, None)
                continue
            with self._guard:
                self._current = job
            try:
                outcome: Ok[object] | Err[BaseException] = Ok(job.fn())
            # Everything is handed to the awaiting task; nothing is swallowed here.
            except BaseException as exc:  # noqa: BLE001
                outcome = Err(exc)
            finally:
                with self._guard:
                    self._current = None
            with contextlib.suppress(RuntimeError):  # the loop closed; nobody is waiting
                job.loop.call_soon_threadsafe(self._settle, job.future, outcome)
        # A worker dropped without close() (e.g. its loop died) still frees its file.
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _settle(
        self, future: asyncio.Future[object], outcome: Ok[object] | Err[BaseException] | None
    ) -> None:
        """On the loop's thread: a job is done (``outcome`` None: skipped, abandoned)."""
        self._unfinished -= 1
        if outcome is None or future.done():
            return
        match outcome:
            case Ok(value):
                future.set_result(value)
            case Err(exc):
                future.set_exception(exc)


def _connect(
    target: str, *, read_only: bool, busy_timeout: float, create: bool
) -> sqlite3.Connection:
    """The default :class:`Connector`: ``sqlite3`` in autocommit mode, foreign keys on."""
    if target == ":memory:" or create:
        conn = sqlite3.connect(
            target, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    else:
        uri = pathlib.Path(target).absolute().as_uri() + "?mode=rw"
        conn = sqlite3.connect(
            uri, timeout=busy_timeout, isolation_level=None, uri=True, check_same_thread=False
        )
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


# --- errors --------------------------------------------------------------------------------

_PARSE_MARKERS = ("syntax error", "incomplete input", "unrecognized token")
_ARGS_MARKERS = ("binding", "bindings", "supplied a dictionary", "supply a value")


def hrana_error_from_sqlite(exc: sqlite3.Error | OverflowError) -> HranaError:
    """Map a ``sqlite3`` exception to the in-band error a Hrana server would report.

    Codes: ``SQL_PARSE_ERROR`` for syntax errors, ``SQL_MANY_STATEMENTS`` for more than
    one statement in ``sql``, ``ARGS_INVALID`` for arguments that do not match the
    statement, otherwise SQLite's extended result code name (``SQLITE_CONSTRAINT_UNIQUE``,
    ``SQLITE_BUSY``, ``SQLITE_READONLY``, ``SQLITE_INTERRUPT``, …).
    """
    message = str(exc)
    if isinstance(exc, OverflowError):
        return HranaError(message=f"argument cannot be bound: {message}", code="ARGS_INVALID")
    name = getattr(exc, "sqlite_errorname", None)
    lowered = message.lower()
    if name is None:
        if "one statement at a time" in lowered:
            return HranaError(
                message="SQL string contains more than one statement; "
                "use a batch or a sequence for several",
                code="SQL_MANY_STATEMENTS",
            )
        if any(marker in lowered for marker in _ARGS_MARKERS):
            return HranaError(message=message, code="ARGS_INVALID")
        return HranaError(message=message, code="SQL_INPUT_ERROR")
    if name == "SQLITE_ERROR" and any(marker in lowered for marker in _PARSE_MARKERS):
        return HranaError(
            message=f"SQL string could not be parsed: {message}", code="SQL_PARSE_ERROR"
        )
    return HranaError(message=message, code=str(name))


# --- statements ----------------------------------------------------------------------------


def resolve_sql(
    sql: str | None, sql_id: int | None, stored: Mapping[int, str]
) -> Ok[str] | Err[HranaError]:
    """The SQL text of a request that names either ``sql`` or a stored ``sql_id``."""
    if sql is not None:
        return Ok(sql)
    if sql_id is not None and sql_id in stored:
        return Ok(stored[sql_id])
    return Err(
        HranaError(
            message=f"SQL text {sql_id} was not stored on this stream (store_sql first)",
            code="SQL_NOT_FOUND",
        )
    )


def _bindings(stmt: Stmt) -> tuple[Value, ...] | dict[str, Value]:
    if not stmt.named_args:
        return stmt.args
    # sqlite3 looks names up without their prefix character (":x" -> "x"). A parameter
    # nobody supplied is an ARGS_INVALID error, as sqld answers, not a silent NULL.
    return {name.lstrip(":@$"): value for name, value in stmt.named_args}


def execute_stmt(
    conn: sqlite3.Connection, stmt: Stmt, stored: Mapping[int, str] | None = None
) -> Ok[StmtResult] | Err[HranaError]:
    """Run one statement; call it inside :meth:`SqliteWorker.run`."""
    match resolve_sql(stmt.sql, stmt.sql_id, stored or {}):
        case Err() as missing:
            return missing
        case Ok(sql):
            pass
    if not _has_statement(sql):
        return Err(
            HranaError(message="SQL string does not contain any statement", code="SQL_NO_STATEMENT")
        )
    started = time.perf_counter()
    changes_before = conn.total_changes
    try:
        inserting = _is_insert(sql)
        cursor = conn.execute(sql, _bindings(stmt))
        try:
            rows = cursor.fetchall()
            description = cursor.description or ()
            affected = cursor.rowcount
            rowid_after = cursor.lastrowid
        finally:
            cursor.close()
        written = conn.total_changes - changes_before
        if affected < 0:
            # sqlite3 reports -1 for DML it does not recognise by its first word
            # (WITH ... INSERT); SQLite's own count of the statement's rows is exact.
            affected = conn.execute("SELECT changes()").fetchone()[0] if written else 0
    except (sqlite3.Error, OverflowError) as exc:
        return Err(hrana_error_from_sqlite(exc))
    return Ok(
        StmtResult(
            cols=tuple(Col(name=column[0], decltype=None) for column in description),
            rows=tuple(rows) if stmt.want_rows else (),
            affected_row_count=affected,
            last_insert_rowid=(rowid_after if inserting and written else None),
            rows_read=len(rows),
            rows_written=written,
            query_duration_ms=(time.perf_counter() - started) * 1000.0,
        )
    )


def _mentions_autocommit(cond: Cond) -> bool:
    match cond:
        case IsAutocommitCond():
            return True
        case NotCond(cond=inner):
            return _mentions_autocommit(inner)
        case AndCond(conds=conds) | OrCond(conds=conds):
            return any(_mentions_autocommit(c) for c in conds)
        case _:
            return False


def split_statements(sql: str) -> list[str]:
    """Split a script at the semicolons that end statements.

    ``sqlite3.complete_statement`` decides where a statement ends, so semicolons in
    strings, comments and ``CREATE TRIGGER … BEGIN … END`` bodies do not split.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : index + 1]):
            statements.append(sql[start : index + 1])
            start = index + 1
    statements.append(sql[start:])
    return [s for s in statements if _has_statement(s)]


def execute_sequence(conn: sqlite3.Connection, sql: str) -> Ok[None] | Err[HranaError]:
    """Run semicolon-separated statements, stopping at the first error.

    Not ``executescript``: that commits an open transaction first, which would break a
    sequence sent inside an interactive transaction.
    """
    for statement in split_statements(sql):
        try:
            conn.execute(statement).close()
        except (sqlite3.Error, OverflowError) as exc:
            return Err(hrana_error_from_sqlite(exc))
    return Ok(None)


# --- describe ------------------------------------------------------------------------------

_EXPLAIN_COLS = ("addr", "opcode", "p1", "p2", "p3", "p4", "p5", "comment")
_EXPLAIN_QUERY_PLAN_COLS = ("id", "parent", "notused", "detail")
# Opcodes that make sqlite3_stmt_readonly() false besides a write transaction.
_WRITING_OPCODES = frozenset({"Vacuum", "JournalMode", "Checkpoint"})


def describe_sql(conn: sqlite3.Connection, sql: str) -> Ok[DescribeResult] | Err[HranaError]:
    """Describe a statement without running it: parameters, columns, read-only-ness.

    The statement is compiled through ``EXPLAIN`` (which never executes it) to check it
    and to read its bytecode: it is read-only when it opens no write transaction, as
    ``sqlite3_stmt_readonly`` decides. Columns are known for queries (compiled again as
    ``SELECT * FROM (…) LIMIT 0``, which stops before reading a row) and EXPLAIN; other
    statements, including ``… RETURNING``, report no columns.
    """
    scan = _scan(sql)
    if not scan.keywords:
        return Err(
            HranaError(message="SQL string does not contain any statement", code="SQL_NO_STATEMENT")
        )
    params = tuple(DescribeParam(name=name) for name in scan.params)
    nulls = _null_bindings(scan.params)
    first = scan.keywords[0]
    is_explain = first == "EXPLAIN"
    body = sql[: scan.end]
    try:
        if is_explain:
            conn.execute(body, nulls).close()
            names = (
                _EXPLAIN_QUERY_PLAN_COLS
                if scan.keywords[1:3] == ["QUERY", "PLAN"]
                else _EXPLAIN_COLS
            )
            return Ok(
                DescribeResult(
                    params=params,
                    cols=tuple(Col(name=n) for n in names),
                    is_explain=True,
                    is_readonly=True,
                )
            )
        program = conn.execute(f"EXPLAIN {body}", nulls).fetchall()
        is_readonly = not any(
            (op == "Transaction" and p2 != 0) or op in _WRITING_OPCODES
            for _, op, _, p2, *_ in program
        )
        cols: tuple[Col, ...] = ()
        if is_readonly and first in ("SELECT", "WITH", "VALUES"):
            cursor = conn.execute(f"SELECT * FROM ({body}\n) LIMIT 0", nulls)
            cols = tuple(Col(name=_top_level_name(d[0])) for d in cursor.description or ())
            cursor.close()
    except (sqlite3.Error, OverflowError) as exc:
        return Err(hrana_error_from_sqlite(exc))
    return Ok(DescribeResult(params=params, cols=cols, is_explain=False, is_readonly=is_readonly))


def _top_level_name(name: str) -> str:
    # A subquery renames duplicate columns "a", "a:1", …; the statement itself would not.
    return re.sub(r":[0-9]+\Z", "", name)


def _null_bindings(params: tuple[str | None, ...]) -> tuple[None, ...] | dict[str, None]:
    if params and all(p is not None and p[0] in ":@$" for p in params):
        return {p.lstrip(":@$"): None for p in params if p is not None}
    return (None,) * len(params)


@dataclass(slots=True)
class _Scan:
    keywords: list[str]  # the first few words, upper-cased
    params: tuple[str | None, ...]  # by index; None for an anonymous "?"
    end: int  # where the statement ends, before trailing semicolons and comments


_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]*")
_QUOTE_CLOSE = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _scan(sql: str) -> _Scan:
    """Tokenize just enough SQL to find parameters as SQLite numbers them.

    ``?`` takes the next number, ``?NNN`` takes NNN, and a name (``:x``, ``@x``, ``$x``)
    takes the next number the first time it appears and the same number after that.
    """
    names: dict[int, str | None] = {}
    by_name: dict[str, int] = {}
    count = 0
    keywords: list[str] = []
    end = 0
    i = 0
    n = len(sql)
    while i < n:
        char = sql[i]
        if char.isspace() or char == ";":
            i += 1
            continue
        if sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        if char in _QUOTE_CLOSE:
            closer = _QUOTE_CLOSE[char]
            i += 1
            while i < n:
                if sql[i] == closer:
                    if closer != "]" and sql.startswith(closer * 2, i):
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif char == "?":
            digits = re.match(r"[0-9]*", sql[i + 1 :])
            number_text = digits.group() if digits else ""
            i += 1 + len(number_text)
            if number_text:
                number = int(number_text)
                names.setdefault(number, f"?{number_text}")
                count = max(count, number)
            else:
                count += 1
                names[count] = None
        elif char in ":@$":
            match_ = _NAME_CHARS.match(sql, i + 1)
            name = char + (match_.group() if match_ else "")
            i += len(name)
            if name not in by_name:
                count += 1
                by_name[name] = count
                names[count] = name
        elif (word := _WORD.match(sql, i)) is not None:
            i = word.end()
            if len(keywords) < 3:
                keywords.append(word.group().upper())
        else:
            i += 1
        end = i
    params = tuple(names.get(index) for index in range(1, count + 1))
    return _Scan(keywords=keywords, params=params, end=min(end, n))


@functools.lru_cache(maxsize=1024)
def _has_statement(sql: str) -> bool:
    return _scan(sql).end > 0


def first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased ("" if it has none), skipping comments."""
    keywords = _scan(sql).keywords
    return keywords[0] if keywords else ""


@functools.lru_cache(maxsize=1024)
def _is_insert(sql: str) -> bool:
    """Whether ``sql`` is an INSERT (or REPLACE), the statements sqld reports
    ``last_insert_rowid`` for: SQLite's own value after it, as sqld sends it (an upsert
    that updated reports the one before, there as here)."""
    keywords = _scan(sql).keywords
    first = keywords[0] if keywords else ""
    if first in ("INSERT", "REPLACE"):
        return True
    return first == "WITH" and ("INSERT" in sql.upper() or "REPLACE" in sql.upper())


# --- batches and stream requests, on any engine -------------------------------------------


def roll_back(conn: WorkerConnection) -> None:
    """Roll back what the connection holds open, if anything (as closing a stream does)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _in_band(
    outcome: Ok[_T] | Err[HranaError], respond: Callable[[_T], StreamResponse]
) -> StreamResult:
    match outcome:
        case Ok(value):
            return StreamOk(response=respond(value))
        case Err(error):
            return StreamError(error=error)


@dataclass(frozen=True, slots=True, kw_only=True)
class HranaEngine(Generic[_C]):
    """Hrana's batches and stream requests over one SQL engine's statement functions.

    What differs between ``sqlite3`` and APSW is how one statement runs, how a sequence
    runs and how a statement is described; conditions, step bookkeeping and the request
    dispatch are the same, so they live here once. :data:`SQLITE3` is this module's
    engine; ``per_user_db.dev._engine.APSW`` the local server's.
    """

    execute_stmt: Callable[[_C, Stmt, Mapping[int, str] | None], Ok[StmtResult] | Err[HranaError]]
    execute_sequence: Callable[[_C, str], Ok[None] | Err[HranaError]]
    describe_sql: Callable[[_C, str], Ok[DescribeResult] | Err[HranaError]]

    def execute_batch(
        self,
        conn: _C,
        batch: Batch,
        stored: Mapping[int, str] | None = None,
        *,
        allow_is_autocommit: bool = True,
    ) -> Ok[BatchResult] | Err[HranaError]:
        """Run a batch step by step, skipping steps whose condition is false.

        Step errors are recorded per step; the batch continues (conditions decide what
        runs next). ``allow_is_autocommit=False`` (Hrana 2) rejects the ``is_autocommit``
        condition as a whole-request error.
        """
        for index, step in enumerate(batch.steps):
            if step.condition is None:
                continue
            if not allow_is_autocommit and _mentions_autocommit(step.condition):
                return Err(
                    HranaError(
                        message=f"batch step {index}: the is_autocommit condition needs "
                        "Hrana 3 (use /v3/pipeline)",
                        code="NOT_SUPPORTED",
                    )
                )
            problem = condition_problem(step.condition, index)
            if problem is not None:
                return Err(HranaError(message=problem, code="PROTOCOL_ERROR"))
        outcomes: list[bool | None] = []
        results: list[StmtResult | None] = []
        errors: list[HranaError | None] = []
        for step in batch.steps:
            if step.condition is not None and not evaluate_condition(
                step.condition, outcomes, is_autocommit=not conn.in_transaction
            ):
                outcomes.append(None)
                results.append(None)
                errors.append(None)
                continue
            match self.execute_stmt(conn, step.stmt, stored):
                case Ok(result):
                    outcomes.append(True)
                    results.append(result)
                    errors.append(None)
                case Err(error):
                    outcomes.append(False)
                    results.append(None)
                    errors.append(error)
        return Ok(BatchResult(step_results=tuple(results), step_errors=tuple(errors)))

    def run_stream_request(
        self, conn: _C, request: StreamRequest, stored: dict[int, str], *, version: int = 3
    ) -> StreamResult:
        """Run one Hrana stream request on ``conn`` (inside :meth:`SqliteWorker.run`).

        ``stored`` is the stream's ``store_sql`` table, updated in place. ``close`` rolls
        back what the stream left open, as closing a stream does on a server.
        """
        match request:
            case ExecuteRequest(stmt=stmt):
                ran = self.execute_stmt(conn, stmt, stored)
                return _in_band(ran, lambda r: ExecuteResponse(result=r))
            case BatchRequest(batch=batch):
                batched = self.execute_batch(conn, batch, stored, allow_is_autocommit=version >= 3)
                return _in_band(batched, lambda r: BatchResponse(result=r))
            case SequenceRequest(sql=sql, sql_id=sql_id) | DescribeRequest(sql=sql, sql_id=sql_id):
                match resolve_sql(sql, sql_id, stored):
                    case Err(error):
                        return StreamError(error=error)
                    case Ok(text):
                        pass
                if isinstance(request, SequenceRequest):
                    sequenced = self.execute_sequence(conn, text)
                    return _in_band(sequenced, lambda _: SequenceResponse())
                described = self.describe_sql(conn, text)
                return _in_band(described, lambda r: DescribeResponse(result=r))
            case StoreSqlRequest(sql_id=sql_id, sql=sql):
                if sql_id in stored:
                    return StreamError(
                        error=HranaError(
                            message=f"SQL id {sql_id} is already stored on this stream; "
                            "close_sql it first",
                            code="SQL_EXISTS",
                        )
                    )
                stored[sql_id] = sql
                return StreamOk(response=StoreSqlResponse())
            case CloseSqlRequest(sql_id=sql_id):
                stored.pop(sql_id, None)
                return StreamOk(response=CloseSqlResponse())
            case CloseRequest():
                roll_back(conn)
                return StreamOk(response=CloseResponse())
            case GetAutocommitRequest():
                if version < 3:
                    return StreamError(
                        error=HranaError(
                            message="get_autocommit needs Hrana 3; use /v3/pipeline",
                            code="NOT_SUPPORTED",
                        )
                    )
                return StreamOk(
                    response=GetAutocommitResponse(is_autocommit=not conn.in_transaction)
                )

    def run_stream_requests(
        self,
        conn: _C,
        requests: Sequence[StreamRequest],
        stored: dict[int, str],
        *,
        version: int = 3,
    ) -> tuple[StreamResult, ...]:
        """Run a pipeline's requests in order; a failing request does not stop the rest."""
        return tuple(self.run_stream_request(conn, r, stored, version=version) for r in requests)


SQLITE3: HranaEngine[sqlite3.Connection] = HranaEngine(
    execute_stmt=execute_stmt, execute_sequence=execute_sequence, describe_sql=describe_sql
)
"""The client's local transport's engine: Python's ``sqlite3``."""

execute_batch = SQLITE3.execute_batch
run_stream_request = SQLITE3.run_stream_request
run_stream_requests = SQLITE3.run_stream_requests
