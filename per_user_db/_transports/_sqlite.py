"""SQLite without ever blocking the event loop: one connection, one thread.

:class:`SqliteWorker` owns one connection on one dedicated thread. Every call to the
connection goes through :meth:`SqliteWorker.run`, which hands a function to that thread
and awaits its result, so a slow query stalls no other task. Cancelling the awaiting task
interrupts the running statement (``sqlite3_interrupt``), so the thread is free again
quickly. :meth:`SqliteWorker.run_inline` runs a short job on the event loop's thread
instead, under a time budget.

The connection is Python's ``sqlite3`` by default; the local protocol server gives its
workers APSW connections (``SqliteWorker.open(connect=...)``). What runs on them (Hrana
statements, batches and streams) is in :mod:`._hrana_sqlite`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from typing_extensions import TypeVar as DefaultTypeVar  # typing's takes a default from 3.13

from per_user_db.core._result import Err, Ok

if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "Connector",
    "SqliteWorker",
    "WorkerClosedError",
    "WorkerConnection",
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
