"""Running the planner against a real database: read, plan, apply; retry on contention.

The decisions live in the pure core (:mod:`~per_user_db.core._planner` plans,
:mod:`~per_user_db.core._apply` builds the one-request program and reads its results);
this module sends the requests, sleeps between attempts and logs what it applied.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ._bundled import bundled_migrations
from ._seams import apply_migrations_doubles
from ._seams import current as current_double
from ._transports._base import DatabaseError
from .core._apply import (
    Applied,
    Retry,
    RetryReason,
    apply_program,
    interpret_apply,
    is_busy,
    read_requests,
    read_version_rows,
)
from .core._migration_errors import MigrationContention, MigrationError, MigrationUnavailable
from .core._planner import AppliedRow, DatabaseAhead, Plan, plan
from .core._result import Err, Ok, Result

if TYPE_CHECKING:
    from ._database import Database
    from .core._migrations import MigrationSet

__all__ = ["MigrationReport", "apply_migrations", "migration_status"]

log = logging.getLogger("per_user_db")

MAX_ATTEMPTS = 12
BACKOFF_BASE = 0.01
BACKOFF_CAP = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationReport:
    """What :func:`apply_migrations` did to one database."""

    database: str
    applied: tuple[str, ...]
    """Tags this call applied, in order (empty when the database was up to date)."""
    already_applied: tuple[str, ...]
    ahead: tuple[AppliedRow, ...] = ()
    """Version rows unknown to this code (only with ``allow_ahead=True``)."""
    attempts: int = 1
    round_trips: int = 1
    duration_ms: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return not self.applied


def _unavailable(db: Database, error: DatabaseError) -> MigrationUnavailable:
    return MigrationUnavailable(
        database=db.url, code=error.code, message=error.explanation, status=error.status
    )


def _busy(error: DatabaseError) -> bool:
    return is_busy(error.code, error.explanation)


async def _read_plan(db: Database, migrations: MigrationSet) -> Result[Plan, MigrationError]:
    try:
        results = await db.pipeline(read_requests(migrations.version_table))
    except DatabaseError as exc:
        return Err(_unavailable(db, exc))
    match read_version_rows(results, database=db.url):
        case Err(error):
            return Err(error)
        case Ok(rows):
            return plan(rows, migrations)


async def migration_status(
    db: Database, migrations: MigrationSet | None = None
) -> Result[Plan, MigrationError]:
    """Dry run: the plan that :func:`apply_migrations` would carry out. Writes nothing."""
    return await _read_plan(db, migrations if migrations is not None else bundled_migrations())


async def apply_migrations(
    db: Database,
    migrations: MigrationSet | None = None,
    *,
    allow_ahead: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
) -> Result[MigrationReport, MigrationError]:
    """Bring ``db`` to the head of ``migrations`` (default: the bundled set).

    One request when there is nothing to do; one more, atomic, to apply everything
    pending. Safe when many processes do it at once: the apply batch re-checks the
    version rows inside its write transaction and, if another migrator changed them,
    this call re-reads and re-plans (up to ``max_attempts`` times). Planner refusals
    (drift, out-of-order, a database ahead of this code) write nothing; with
    ``allow_ahead`` a database migrated by newer code is accepted as it is.
    """
    double = current_double(apply_migrations_doubles)
    if double is not None:
        doubled: Result[MigrationReport, MigrationError] = await double(
            db, migrations, allow_ahead=allow_ahead, max_attempts=max_attempts
        )
        return doubled
    migrations = migrations if migrations is not None else bundled_migrations()
    started = time.perf_counter()
    round_trips = 0
    for attempt in range(1, max_attempts + 1):
        planned = await _read_plan(db, migrations)
        round_trips += 1
        match planned:
            case Err(DatabaseAhead() as ahead) if allow_ahead:
                log.warning("%s", ahead)
                return Ok(
                    MigrationReport(
                        database=db.url,
                        applied=(),
                        already_applied=(),
                        ahead=ahead.unknown,
                        attempts=attempt,
                        round_trips=round_trips,
                        duration_ms=(time.perf_counter() - started) * 1000,
                    )
                )
            case Err(MigrationUnavailable(code=code, message=message)) if is_busy(code, message):
                await _back_off(attempt, max_attempts)
                continue
            case Err(error):
                return Err(error)
            case Ok(current):
                pass
        done = tuple(m.tag for m in current.applied)
        if current.up_to_date:
            log.debug("%s is up to date (%d migrations)", db.url, len(done))
            return Ok(
                MigrationReport(
                    database=db.url,
                    applied=(),
                    already_applied=done,
                    attempts=attempt,
                    round_trips=round_trips,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            )
        program = apply_program(current)
        try:
            results = await db.pipeline(program.requests)
        except DatabaseError as exc:
            if _busy(exc):
                await _back_off(attempt, max_attempts)
                continue
            return Err(_unavailable(db, exc))
        finally:
            round_trips += 1
        match interpret_apply(program, results, database=db.url):
            case Applied(durations_ms=durations):
                for migration in current.pending:
                    log.info(
                        "applied migration %s to %s in %.1f ms",
                        migration.tag,
                        db.url,
                        durations.get(migration.tag, 0.0),
                    )
                return Ok(
                    MigrationReport(
                        database=db.url,
                        applied=tuple(m.tag for m in current.pending),
                        already_applied=done,
                        attempts=attempt,
                        round_trips=round_trips,
                        duration_ms=(time.perf_counter() - started) * 1000,
                    )
                )
            case Retry(reason=reason):
                log.debug("%s: %s; planning again", db.url, reason.value)
                if reason is RetryReason.BUSY:
                    await _back_off(attempt, max_attempts)
            case failure:
                return Err(failure)
    return Err(MigrationContention(database=db.url, attempts=max_attempts))


async def _back_off(attempt: int, max_attempts: int) -> None:
    if attempt >= max_attempts:
        return  # no attempt follows: waiting would only delay the error
    # Full jitter: spread the retries of many contending processes.
    await anyio.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))  # noqa: S311
