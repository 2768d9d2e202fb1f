"""``connect(..., lazy=True)``: the schema check rides in the app's first request.

See :mod:`per_user_db.core._deferred` for the guard and the batch shapes. This module holds
the state of one database's pending check and settles it: when the guard held, the check
is done; when it failed (nothing the app sent ran), the full migrator runs once, however
many statements were waiting, and the statements are sent again without a guard.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ._migrate import apply_migrations
from ._transports._base import DatabaseError
from .core._deferred import head_guard
from .core._errors import ConnectErrorCode
from .core._result import Err, Ok

if TYPE_CHECKING:
    from ._connect import VerifiedCache
    from ._database import Database
    from .core._hrana import Stmt
    from .core._migration_errors import MigrationError
    from .core._migrations import MigrationSet

__all__ = ["DeferredCheck", "MigrationFailedError"]


class MigrationFailedError(DatabaseError):
    """The deferred schema check found the database behind (or ahead) and bringing it up
    to date failed; none of the statements that were waiting ran.

    ``error`` is the :data:`~per_user_db.MigrationError` value, as ``connect()`` without
    ``lazy`` would have returned it in ``ConnectError.cause``.
    """

    error: MigrationError

    def __init__(self, message: str, error: MigrationError) -> None:
        super().__init__(message, ConnectErrorCode.MIGRATION_FAILED.value)
        self.error = error

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.explanation, self.error))


class DeferredCheck:
    """One database's schema check, not yet done."""

    def __init__(
        self,
        migrations: MigrationSet,
        *,
        allow_ahead: bool,
        cache: VerifiedCache | None,
    ) -> None:
        self._migrations = migrations
        self._allow_ahead = allow_ahead
        self._cache = cache
        self._guard = head_guard(migrations)
        self._settling = asyncio.Lock()

    @property
    def guard(self) -> Stmt | None:
        """The guard to put before the next statements; None once the check is done."""
        return self._guard

    def held(self, db: Database) -> None:
        """The guard succeeded: the database is at the head."""
        if self._guard is not None:
            self._guard = None
            if self._cache is not None:
                self._cache.remember(db, self._migrations)

    async def settle(self, db: Database) -> None:
        """Bring ``db`` to the head with the full migrator (once, whoever asks first);
        raises :class:`MigrationFailedError` when that fails."""
        async with self._settling:
            if self._guard is None:
                return
            match await apply_migrations(db, self._migrations, allow_ahead=self._allow_ahead):
                case Ok(report):
                    self._guard = None
                    if self._cache is not None and not report.ahead:
                        self._cache.remember(db, self._migrations)
                case Err(error):
                    raise MigrationFailedError(
                        f"{db.url}: the schema check of the first request found the "
                        f"database not at the head, and migrating it failed: {error}",
                        error,
                    )
