"""``connect``: open a user's database and bring its schema up to date."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ._bundled import bundled_migrations
from ._deferred import DeferredCheck
from ._migrate import apply_migrations
from ._open import DEFAULT_TIMEOUT, open_database
from ._transports._sqlite import DEFAULT_BUSY_TIMEOUT
from .core._errors import ConnectError, ConnectErrorCode
from .core._migration_errors import MigrationUnavailable
from .core._result import Err, Ok, Result
from .core._urls import TransportKind

if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp

    from ._database import Database
    from ._transports._http import TokenProvider
    from .core._migrations import MigrationSet

__all__ = ["VerifiedCache", "connect"]


class VerifiedCache:
    """Remembers, per process, which databases were verified up to date recently.

    ``connect(..., cache=cache)`` skips the version check (zero requests) for a database
    verified at the same migration-set fingerprint less than ``ttl`` seconds ago. Opt in
    only where every schema change goes through this process's migrations: a database
    migrated elsewhere is noticed when its entry expires. ``:memory:`` databases are
    never cached (each is a different database).
    """

    def __init__(
        self,
        ttl: float = 60.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._verified: OrderedDict[tuple[str, str], float] = OrderedDict()
        # A set's fingerprint digests all of it; an app passes the same few sets again
        # and again, so remember it per set object (which the entry keeps alive).
        self._fingerprints: dict[int, tuple[MigrationSet, str]] = {}

    def __len__(self) -> int:
        return len(self._verified)

    @staticmethod
    def _where(db: Database) -> str | None:
        url = db.parsed_url
        if url.is_memory:
            return None
        if url.transport is TransportKind.LOCAL:
            return str(Path(url.endpoint).resolve())
        return url.endpoint

    def _fingerprint(self, migrations: MigrationSet) -> str:
        known = self._fingerprints.get(id(migrations))
        if known is not None and known[0] is migrations:
            return known[1]
        if len(self._fingerprints) >= 16:
            self._fingerprints.clear()
        fingerprint = migrations.fingerprint
        self._fingerprints[id(migrations)] = (migrations, fingerprint)
        return fingerprint

    def _key(self, db: Database, migrations: MigrationSet) -> tuple[str, str] | None:
        where = self._where(db)
        return None if where is None else (where, self._fingerprint(migrations))

    def is_fresh(self, db: Database, migrations: MigrationSet) -> bool:
        key = self._key(db, migrations)
        if key is None:
            return False
        verified = self._verified.get(key)
        if verified is None or self._clock() - verified >= self.ttl:
            return False
        self._verified.move_to_end(key)
        return True

    def remember(self, db: Database, migrations: MigrationSet) -> None:
        key = self._key(db, migrations)
        if key is None:
            return
        self._verified[key] = self._clock()
        self._verified.move_to_end(key)
        while len(self._verified) > self.max_entries:
            self._verified.popitem(last=False)

    def forget(self, db: Database) -> None:
        """Drop every entry of ``db`` (after migrating it by other means, say)."""
        where = self._where(db)
        for key in [k for k in self._verified if k[0] == where]:
            del self._verified[key]


def _connect_error(db: Database, error: object) -> ConnectError:
    if isinstance(error, MigrationUnavailable):
        try:
            code = ConnectErrorCode(error.code)
        except ValueError:
            code = ConnectErrorCode.SQL_ERROR
        return ConnectError(
            code=code,
            url=db.url,
            message="could not check the schema version",
            status=error.status,
            detail=f"{error.code}: {error.message}",
            cause=error,
        )
    return ConnectError(
        code=ConnectErrorCode.MIGRATION_FAILED, url=db.url, message=str(error), cause=error
    )


async def connect(
    url: str,
    auth_token: str | None = None,
    *,
    migrate: bool = True,
    lazy: bool = False,
    migrations: MigrationSet | None = None,
    allow_ahead: bool = False,
    cache: VerifiedCache | None = None,
    request_timeout: float = DEFAULT_TIMEOUT,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    allow_insecure: bool = False,
    session: aiohttp.ClientSession | None = None,
    assert_foreign_keys: bool = False,
    token_provider: TokenProvider | None = None,
) -> Result[Database, ConnectError]:
    """Open the database at ``url`` and, with ``migrate``, bring it to the head of
    ``migrations`` (default: the bundled per-user schema).

    An up-to-date database costs one request; pending migrations one more, applied
    atomically. ``migrate=False`` sends nothing. On ``Err`` nothing is left open; a
    failed migration's :class:`ConnectError` has code ``MIGRATION_FAILED`` and the
    ``MigrationError`` value as ``cause``. See :func:`open_database` for the options.

    ``lazy=True`` sends nothing either: the check rides in the first ``execute`` or
    ``batch`` as a guard the app's statements are conditioned on, so ``connect`` and the
    first query cost one request together. If the guard finds the database behind,
    none of those statements ran; the database is migrated and they are sent again. A
    migration failure then surfaces from that first call as :class:`MigrationFailedError`
    (a :class:`DatabaseError`) instead of an ``Err`` here, and an unreachable server
    likewise. The guard checks the row count and the newest migration's time and hash,
    not older hashes (drift); a transaction's first statement runs the full check first.
    """
    opened = await open_database(
        url,
        auth_token,
        request_timeout=request_timeout,
        busy_timeout=busy_timeout,
        allow_insecure=allow_insecure,
        session=session,
        assert_foreign_keys=assert_foreign_keys,
        token_provider=token_provider,
    )
    if isinstance(opened, Err) or not migrate:
        return opened
    db = opened.value
    wanted = migrations if migrations is not None else bundled_migrations()
    if cache is not None and cache.is_fresh(db, wanted):
        return Ok(db)
    if lazy:
        db.defer_schema_check(DeferredCheck(wanted, allow_ahead=allow_ahead, cache=cache))
        return Ok(db)
    try:
        migrated = await apply_migrations(db, wanted, allow_ahead=allow_ahead)
    except BaseException:
        # Cancelled (or failed unexpectedly) mid-migration: the caller never gets the
        # database, so it must not stay open. The batch itself is atomic.
        with anyio.CancelScope(shield=True):
            await db.close()
        raise
    match migrated:
        case Ok(report):
            if cache is not None and not report.ahead:
                cache.remember(db, wanted)
            return Ok(db)
        case Err(error):
            await db.close()
            return Err(_connect_error(db, error))
