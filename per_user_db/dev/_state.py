"""What the local protocol server remembers: databases on disk, open streams, counters.

A *stream* is Hrana's unit of state: one SQLite connection (its own
:class:`~per_user_db._transports._sqlite.SqliteWorker`, so streams never wait on each other's SQL),
the SQL texts stored on it, and the baton that names it. Batons rotate on every
response, so a stale baton (a replayed or raced request) is refused instead of
silently interleaving with the stream's current owner.

Nothing here speaks HTTP; ``_server.py`` maps these outcomes to responses.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from per_user_db._transports._hrana_sqlite import roll_back
from per_user_db._transports._sqlite import SqliteWorker
from per_user_db.core._hrana import BatchResponse, HranaError, StreamError, StreamOk
from per_user_db.core._result import Err, Ok
from per_user_db.dev._engine import connect
from per_user_db.dev._guard import guard_connection
from per_user_db.dev._inline import FastPipelines

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from per_user_db.core._hrana import BatchResult, StreamResult
    from per_user_db.dev._engine import ServerWorker

__all__ = [
    "DATABASE_NAME",
    "Access",
    "Authorize",
    "ProtocolServerState",
    "RequestCounts",
    "Stream",
    "StreamRefusal",
    "allow_all",
    "explain_batch",
    "explain_refusals",
    "roll_back",
    "transaction_timed_out",
]

DATABASE_NAME = re.compile(r"[a-z0-9-]{1,64}\Z")
ROOT_NAME = "main"
"""The name the file of ``--db FILE`` answers to (at the root, and at ``/db/main/``)."""

# How many expired batons to remember so a late request hears STREAM_EXPIRED rather
# than "unknown baton"; older ones are forgotten first.
_EXPIRED_MEMORY = 4096


class Access(enum.Enum):
    """What a token may do with a database."""

    READ_WRITE = "rw"
    READ_ONLY = "ro"


Authorize: TypeAlias = "Callable[[str | None, str], Awaitable[Access | None]]"
"""``authorize(bearer_token_or_None, database_name)`` → the access granted, or None (401)."""


async def allow_all(token: str | None, database: str) -> Access | None:
    """The default hook: anyone may read and write every database."""
    return Access.READ_WRITE


@dataclass(slots=True)
class RequestCounts:
    """How many requests each route and each database received (for tests).

    Route names: ``"v2/pipeline"``, ``"v3/pipeline"``, ``"v3/cursor"``, ``"health"``,
    ``"version"``, ``"v2"``, ``"v3"``.
    """

    _counts: collections.Counter[tuple[str, str | None]] = field(
        default_factory=collections.Counter
    )

    def record(self, route: str, database: str | None) -> None:
        self._counts[(route, database)] += 1

    def count(self, *, route: str | None = None, database: str | None = None) -> int:
        """Requests matching both filters (a filter left out matches everything)."""
        return sum(
            n
            for (r, d), n in self._counts.items()
            if (route is None or r == route) and (database is None or d == database)
        )

    def by_route(self) -> dict[str, int]:
        out: collections.Counter[str] = collections.Counter()
        for (route, _), n in self._counts.items():
            out[route] += n
        return dict(out)

    def by_database(self) -> dict[str, int]:
        out: collections.Counter[str] = collections.Counter()
        for (_, database), n in self._counts.items():
            if database is not None:
                out[database] += n
        return dict(out)

    def reset(self) -> None:
        self._counts.clear()


@dataclass(eq=False, slots=True, kw_only=True)
class Stream:
    """One open Hrana stream; use it only while holding :attr:`lock`."""

    database: str
    access: Access
    worker: ServerWorker
    baton: str
    last_used: float
    stored_sql: dict[int, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False
    in_transaction_since: float | None = None
    """When the stream's connection last left autocommit (a transaction it holds)."""
    transaction_timed_out: bool = False
    """The server rolled its transaction back; the next request hears about it."""

    def ran(self, *, in_transaction: bool, now: float) -> None:
        """Note whether the stream holds a transaction after a request ran."""
        if not in_transaction:
            self.in_transaction_since = None
        elif self.in_transaction_since is None:
            self.in_transaction_since = now


class StreamRefusal(enum.Enum):
    """Why a baton does not lead to a usable stream."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    OTHER_DATABASE = "other_database"


def _new_baton() -> str:
    return secrets.token_urlsafe(24)


class ProtocolServerState:
    """Databases in ``data_dir`` (``<name>.db``) and the streams open on them."""

    def __init__(
        self,
        data_dir: Path,
        *,
        authorize: Authorize,
        stream_idle_timeout: float,
        create_on_demand: bool,
        busy_timeout: float = 5.0,
        max_streams: int = 512,
        statement_timeout: float | None = None,
        transaction_timeout: float | None = 5.0,
        root_database: Path | None = None,
        inline: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.authorize = authorize
        self.stream_idle_timeout = stream_idle_timeout
        self.create_on_demand = create_on_demand
        self.busy_timeout = busy_timeout
        self.max_streams = max_streams
        self.statement_timeout = statement_timeout
        self.transaction_timeout = transaction_timeout
        self.root_database = root_database
        self.inline = inline
        """One-shot pipelines may run on the event loop's thread (see :mod:`._inline`)."""
        """A file served at the root (``--db FILE``), under the name :data:`ROOT_NAME`."""
        # Connections of finished one-shot pipelines, kept for the next: opening one costs
        # a thread hand-off and a SQLite open, the pipeline itself often less.
        self._idle_workers: dict[tuple[str, Access], list[tuple[float, ServerWorker]]] = {}
        self._slots: dict[tuple[str, Access], asyncio.Semaphore] = {}
        self._lent = 0
        self.fast_pipelines = FastPipelines()
        self.counts = RequestCounts()
        self._streams: dict[str, Stream] = {}
        self._expired: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Streams found expired during a lookup, which cannot await; the reaper (or the
        # next lookup's caller) closes their workers.
        self._closing: set[Stream] = set()

    # --- databases ---------------------------------------------------------------------

    def database_path(self, name: str) -> Path:
        if self.root_database is not None and name == ROOT_NAME:
            return self.root_database
        if not DATABASE_NAME.match(name):
            raise ValueError(
                f"invalid database name {name!r}: use 1-64 characters from a-z, 0-9 and '-'"
            )
        return self.data_dir / f"{name}.db"

    def database_exists(self, name: str) -> bool:
        return DATABASE_NAME.match(name) is not None and self.database_path(name).is_file()

    def list_databases(self) -> list[str]:
        return sorted(p.stem for p in self.data_dir.glob("*.db") if DATABASE_NAME.match(p.stem))

    async def create_database(self, name: str) -> bool:
        """Create an empty database (WAL mode); False if it already existed."""
        path = self.database_path(name)
        if path.exists():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        worker = await SqliteWorker.open(path, connect=connect, busy_timeout=self.busy_timeout)
        try:
            # WAL lets a stream read while another stream of the same database writes.
            await worker.run(lambda conn: conn.execute("PRAGMA journal_mode = WAL").fetchall())
        finally:
            await worker.close()
        return True

    async def delete_database(self, name: str) -> bool:
        """Close the database's streams and delete its files; False if it did not exist."""
        path = self.database_path(name)
        for stream in [s for s in self._streams.values() if s.database == name]:
            await self._drop(stream, expired=False)
        kept = [
            w
            for k in list(self._idle_workers)
            if k[0] == name
            for _, w in self._idle_workers.pop(k)
        ]
        for worker in kept:
            await worker.close()
        return _remove_database_files(path)

    # --- one-shot pipelines ------------------------------------------------------------

    async def borrow(self, database: str, access: Access) -> Ok[ServerWorker] | Err[HranaError]:
        """A connection for one pipeline that opens and closes its stream in one request:
        an idle one of the same database and access, or a new one. At most
        :data:`_LENT_PER_DATABASE` run at once per database; more only contend for the
        interpreter lock (and for SQLite's write lock), so the rest wait their turn."""
        slots = self._slots.setdefault((database, access), asyncio.Semaphore(_LENT_PER_DATABASE))
        await slots.acquire()
        try:
            lent = await self._lend(database, access)
        except BaseException:
            slots.release()
            raise
        if isinstance(lent, Err):
            slots.release()
        return lent

    async def _lend(self, database: str, access: Access) -> Ok[ServerWorker] | Err[HranaError]:
        idle = self._idle_workers.get((database, access))
        if idle:
            self._lent += 1
            return Ok(idle.pop()[1])
        refused = await self._room_for(database)
        if refused is not None:
            return Err(refused)
        self._lent += 1
        try:
            return Ok(await self.open_worker(database, access))
        except BaseException:
            self._lent -= 1
            raise

    async def give_back(
        self, database: str, access: Access, worker: ServerWorker, *, reusable: bool, now: float
    ) -> None:
        """Return a borrowed connection: kept for the next pipeline if ``reusable`` (its
        job left it as a new one is), else closed."""
        unwanted = self.take_back(database, access, worker, reusable=reusable, now=now)
        if unwanted is not None:
            await unwanted.close()

    def take_back(
        self, database: str, access: Access, worker: ServerWorker, *, reusable: bool, now: float
    ) -> ServerWorker | None:
        """:meth:`give_back` without the wait: returns the connection the caller must
        close, if it is not kept."""
        self._lent -= 1
        self._slots[(database, access)].release()
        idle = self._idle_workers.setdefault((database, access), [])
        if reusable and not worker.closed and len(idle) < _MAX_IDLE_PER_DATABASE:
            idle.append((now, worker))
            return None
        return worker

    async def _close_idle_workers(self, now: float) -> None:
        # Take the expired ones out of the pool first, with no await in between: a
        # pipeline that borrows while they close must not get one of them.
        expired: list[ServerWorker] = []
        for key in list(self._idle_workers):
            idle = self._idle_workers[key]
            expired += [w for t, w in idle if now - t > self.stream_idle_timeout]
            idle[:] = [(t, w) for t, w in idle if now - t <= self.stream_idle_timeout]
            if not idle:
                del self._idle_workers[key]
        for worker in expired:
            await worker.close()

    # --- streams -----------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def idle_connections(self) -> int:
        """Connections kept for the next one-shot pipeline, over all databases."""
        return sum(len(idle) for idle in self._idle_workers.values())

    async def open_stream(
        self, database: str, access: Access, now: float
    ) -> Ok[Stream] | Err[HranaError]:
        """Open a stream on an existing (or, with ``create_on_demand``, new) database."""
        refused = await self._room_for(database)
        if refused is not None:
            return Err(refused)
        worker = await self.open_worker(database, access)
        stream = Stream(
            database=database, access=access, worker=worker, baton=_new_baton(), last_used=now
        )
        self._streams[stream.baton] = stream
        return Ok(stream)

    async def _room_for(self, database: str) -> HranaError | None:
        """Why no connection may be opened to ``database`` now (too many open, or no such
        database), or None; creates it first with ``create_on_demand``."""
        if len(self._streams) + self._lent >= self.max_streams:
            return _too_many_streams(self.max_streams)
        if not self.database_exists(database):
            if not self.create_on_demand:
                return HranaError(message=f"database {database!r} does not exist", code="NOT_FOUND")
            await self.create_database(database)
        return None

    async def open_worker(self, database: str, access: Access) -> ServerWorker:
        """A connection to ``database`` for a client, under the guard of :mod:`._guard`
        (raises ``apsw.Error`` if SQLite cannot open it)."""
        read_only = access is Access.READ_ONLY
        return await SqliteWorker.open(
            self.database_path(database),
            connect=connect,
            read_only=read_only,
            busy_timeout=self.busy_timeout,
            create=False,
            prepare=guard_connection(read_only=read_only),
            time_limit=self.statement_timeout,
        )

    def find_stream(self, baton: str, database: str, now: float) -> Stream | StreamRefusal:
        """The stream a baton names; checked again by the caller once it holds the lock."""
        stream = self._streams.get(baton)
        if stream is None:
            return StreamRefusal.EXPIRED if baton in self._expired else StreamRefusal.UNKNOWN
        if stream.database != database:
            return StreamRefusal.OTHER_DATABASE
        if self._is_idle(stream, now):
            self._forget(stream, expired=True)
            self._close_later(stream)
            return StreamRefusal.EXPIRED
        return stream

    def rotate_baton(self, stream: Stream, now: float) -> str:
        del self._streams[stream.baton]
        stream.baton = _new_baton()
        stream.last_used = now
        self._streams[stream.baton] = stream
        return stream.baton

    async def close_stream(self, stream: Stream) -> None:
        await self._drop(stream, expired=False)

    async def reap_idle(self, now: float) -> int:
        """Close streams idle longer than the timeout, and roll back transactions held
        longer than :attr:`transaction_timeout`; returns how many streams closed."""
        idle = [s for s in self._streams.values() if self._is_idle(s, now)]
        for stream in idle:
            await self._drop(stream, expired=True)
        await self.close_pending()
        await self._end_long_transactions(now)
        await self._close_idle_workers(now)
        return len(idle)

    async def _end_long_transactions(self, now: float) -> None:
        # As Turso does after ~5 s: an interactive transaction must not hold the write
        # lock for every other writer of the database while its client thinks.
        limit = self.transaction_timeout
        if limit is None:
            return
        for stream in list(self._streams.values()):
            since = stream.in_transaction_since
            if since is None or now - since < limit or stream.lock.locked():
                continue
            async with stream.lock:
                if stream.closed or stream.in_transaction_since is None:
                    continue
                await stream.worker.run(roll_back)
                stream.in_transaction_since = None
                stream.transaction_timed_out = True

    async def close_all(self) -> None:
        for stream in list(self._streams.values()):
            await self._drop(stream, expired=False)
        await self.close_pending()
        await self._close_idle_workers(float("inf"))

    def _is_idle(self, stream: Stream, now: float) -> bool:
        return not stream.lock.locked() and now - stream.last_used > self.stream_idle_timeout

    def _forget(self, stream: Stream, *, expired: bool) -> None:
        stream.closed = True
        if self._streams.get(stream.baton) is stream:
            del self._streams[stream.baton]
        if expired:
            self._expired[stream.baton] = None
            while len(self._expired) > _EXPIRED_MEMORY:
                self._expired.popitem(last=False)

    async def _drop(self, stream: Stream, *, expired: bool) -> None:
        self._forget(stream, expired=expired)
        await stream.worker.close()

    def _close_later(self, stream: Stream) -> None:
        self._closing.add(stream)

    async def close_pending(self) -> None:
        while self._closing:
            await self._closing.pop().worker.close()


def transaction_timed_out(limit: float | None) -> HranaError:
    """The error of the first statement a stream runs after its transaction was rolled
    back for being open longer than ``limit`` seconds."""
    return HranaError(
        message=f"the stream's transaction was rolled back after being open longer than "
        f"{limit or 0:g} s (this server's limit; Turso's is about 5 s); start it again, "
        "and keep transactions short",
        code="TRANSACTION_TIMEOUT",
    )


_LENT_PER_DATABASE = 8
_MAX_IDLE_PER_DATABASE = _LENT_PER_DATABASE


def _too_many_streams(limit: int) -> HranaError:
    return HranaError(
        message=f"too many open streams ({limit}); close streams you no longer use",
        code="TOO_MANY_STREAMS",
    )


def explain_refusals(access: Access, database: str, result: StreamResult) -> StreamResult:
    """Say why a write failed on a read-only stream, in the error itself (HTTP and
    WebSocket alike)."""
    if access is not Access.READ_ONLY:
        return result
    match result:
        case StreamError(error=error):
            return StreamError(error=_explain_read_only(database, error))
        case StreamOk(response=BatchResponse(result=batch)):
            return StreamOk(response=BatchResponse(result=explain_batch(database, batch)))
        case _:
            return result


def explain_batch(database: str, result: BatchResult) -> BatchResult:
    """A read-only stream's batch result, its write errors explained."""
    errors = tuple(
        None if e is None else _explain_read_only(database, e) for e in result.step_errors
    )
    return replace(result, step_errors=errors)


def _explain_read_only(database: str, error: HranaError) -> HranaError:
    if not (error.code or "").startswith("SQLITE_READONLY"):
        return error
    return HranaError(
        message=f"write rejected: the token grants read-only access to database "
        f"{database!r} ({error.message})",
        code=error.code,
    )


def _remove_database_files(path: Path) -> bool:
    # A few unlink calls: too quick to be worth a thread hop.
    existed = path.exists()
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
    return existed
