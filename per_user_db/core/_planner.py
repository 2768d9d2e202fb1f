"""The migration planner: compare the version table with the migration set.

drizzle decides what to run by comparing each migration's ``when`` with the single
newest ``created_at`` in ``__drizzle_migrations``. That silently skips a migration
edited after it ran, or one merged with an older ``when`` than the newest applied. The
planner matches every row instead and refuses to guess:

* a row whose ``created_at`` equals a migration's ``when`` marks it applied; a non-empty
  hash that differs from the file's is :class:`Drift` (drizzle's Expo migrator writes an
  empty hash, which is accepted);
* a row that matches no migration is :class:`DatabaseAhead` (newer code migrated it);
* a migration older than the newest row but not applied is :class:`OutOfOrder`;
* otherwise every migration newer than the newest row is pending, in order.

Pure: rows in, a :class:`Plan` (or a :class:`PlanError`) out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from ._migrations import DEFAULT_VERSION_TABLE
from ._result import Err, Ok, Result

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._migrations import Migration, MigrationSet

__all__ = [
    "CREATE_VERSION_TABLE",
    "SELECT_VERSION_ROWS",
    "VERSION_TABLE",
    "AppliedRow",
    "DatabaseAhead",
    "Drift",
    "DriftedMigration",
    "InvalidVersionRow",
    "OutOfOrder",
    "Plan",
    "PlanError",
    "create_version_table",
    "disables_foreign_keys",
    "insert_version_row",
    "plan",
    "select_version_rows",
]

VERSION_TABLE = DEFAULT_VERSION_TABLE


def create_version_table(table: str = VERSION_TABLE) -> str:
    """drizzle's version table, exactly as drizzle creates it."""
    return (
        f'CREATE TABLE IF NOT EXISTS "{table}" '
        "(id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)"
    )


def select_version_rows(table: str = VERSION_TABLE) -> str:
    return f'SELECT hash, created_at FROM "{table}"'


CREATE_VERSION_TABLE = create_version_table()
SELECT_VERSION_ROWS = select_version_rows()

_FOREIGN_KEYS_OFF = re.compile(r"^\s*PRAGMA\s+foreign_keys\s*=\s*(OFF|0|FALSE|NO)\s*;?\s*$", re.I)


def insert_version_row(migration: Migration, table: str = VERSION_TABLE) -> str:
    """The row drizzle writes for an applied migration (hash is hex: safe to inline)."""
    return (
        f'INSERT INTO "{table}" ("hash", "created_at") '
        f"VALUES ('{migration.hash}', {migration.when})"
    )


def disables_foreign_keys(statement: str) -> bool:
    """Whether ``statement`` is drizzle's ``PRAGMA foreign_keys=OFF`` of a table rebuild."""
    return _FOREIGN_KEYS_OFF.match(statement) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliedRow:
    """A row of ``__drizzle_migrations``: the file hash (may be empty) and its ``when``."""

    hash: str
    created_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What it takes to bring a database to the head of a migration set.

    ``statements`` is the exact SQL to run inside one transaction, the version-table
    inserts included. ``disables_foreign_keys`` says a pending migration is a table
    rebuild: the caller must turn foreign keys off *outside* the transaction (SQLite
    ignores the pragma inside one) and run ``PRAGMA foreign_key_check`` before COMMIT.
    """

    applied: tuple[Migration, ...]
    pending: tuple[Migration, ...]
    statements: tuple[str, ...]
    disables_foreign_keys: bool
    rows: tuple[AppliedRow, ...]
    version_table: str = VERSION_TABLE

    @property
    def up_to_date(self) -> bool:
        return not self.pending

    def describe(self) -> str:
        """A human-readable summary, for dry runs and logs."""
        if not self.pending:
            return f"up to date ({len(self.applied)} applied)"
        tags = ", ".join(m.tag for m in self.pending)
        return f"{len(self.pending)} pending after {len(self.applied)} applied: {tags}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftedMigration:
    migration: Migration
    recorded_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    """Applied migrations whose files changed afterwards."""

    drifted: tuple[DriftedMigration, ...]

    def __str__(self) -> str:
        details = "; ".join(
            f"{d.migration.tag} (recorded {d.recorded_hash[:12]}…, file {d.migration.hash[:12]}…)"
            for d in self.drifted
        )
        return (
            f"migration drift: {details}. These migrations were edited after they were "
            "applied; restore the original files and put the change in a new migration"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseAhead:
    """Version rows that match no migration: newer code migrated this database."""

    unknown: tuple[AppliedRow, ...]
    known_head: int | None

    def __str__(self) -> str:
        whens = ", ".join(str(r.created_at) for r in self.unknown)
        return (
            f"database is ahead: version rows created_at={whens} match no migration known "
            "here (newest known: "
            f"{self.known_head if self.known_head is not None else 'none'}). Deploy the newer "
            "code, or connect with allow_ahead=True to run without migrating"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutOfOrder:
    """Unapplied migrations older than the newest applied one."""

    migrations: tuple[Migration, ...]
    newest_applied: int

    def __str__(self) -> str:
        tags = ", ".join(f"{m.tag} (when {m.when})" for m in self.migrations)
        return (
            f"out-of-order migrations: {tags} are older than the newest applied row "
            f"(created_at {self.newest_applied}) but were never applied. Give them a "
            "'when' newer than every applied migration (regenerate them after merging)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidVersionRow:
    """A version-table row whose ``created_at`` or ``hash`` cannot be read."""

    hash: object
    created_at: object

    def __str__(self) -> str:
        return (
            f"unreadable row in {VERSION_TABLE}: created_at={self.created_at!r}, hash of type "
            f"{type(self.hash).__name__}. Fix or delete the row by hand"
        )


PlanError = Drift | DatabaseAhead | OutOfOrder | InvalidVersionRow


def _created_at(value: object) -> int | None:
    """drizzle stores ``created_at`` as numeric: it may come back as int, float or text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except ArithmeticError:
            return None
        if number.is_finite() and number == number.to_integral_value():
            return int(number)
    return None


def _read_rows(
    applied: Iterable[tuple[object, object]],
) -> Result[tuple[AppliedRow, ...], InvalidVersionRow]:
    rows: list[AppliedRow] = []
    for raw_hash, raw_created_at in applied:
        created_at = _created_at(raw_created_at)
        if raw_hash is None:
            raw_hash = ""
        if created_at is None or not isinstance(raw_hash, str):
            return Err(InvalidVersionRow(hash=raw_hash, created_at=raw_created_at))
        rows.append(AppliedRow(hash=raw_hash, created_at=created_at))
    return Ok(tuple(sorted(rows, key=lambda r: (r.created_at, r.hash))))


def plan(
    applied: Iterable[tuple[object, object]], migrations: MigrationSet
) -> Result[Plan, PlanError]:
    """Plan the migrations ``applied`` (``(hash, created_at)`` rows, any order) lacks."""
    match _read_rows(applied):
        case Err(error):
            return Err(error)
        case Ok(rows):
            pass
    by_when = {m.when: m for m in migrations}
    drifted: dict[str, DriftedMigration] = {}
    unknown: list[AppliedRow] = []
    applied_whens: set[int] = set()
    for row in rows:
        migration = by_when.get(row.created_at)
        if migration is None:
            unknown.append(row)
            continue
        applied_whens.add(row.created_at)
        if row.hash and row.hash != migration.hash:
            drifted.setdefault(
                migration.tag, DriftedMigration(migration=migration, recorded_hash=row.hash)
            )
    if drifted:
        ordered = sorted(drifted.values(), key=lambda d: d.migration.idx)
        return Err(Drift(drifted=tuple(ordered)))
    if unknown:
        head = migrations.head
        return Err(DatabaseAhead(unknown=tuple(unknown), known_head=head.when if head else None))
    newest = rows[-1].created_at if rows else None
    done = tuple(m for m in migrations if m.when in applied_whens)
    if newest is None:
        pending = migrations.migrations
    else:
        skipped = tuple(m for m in migrations if m.when < newest and m.when not in applied_whens)
        if skipped:
            return Err(OutOfOrder(migrations=skipped, newest_applied=newest))
        pending = tuple(m for m in migrations if m.when > newest)
    statements: list[str] = []
    for migration in pending:
        statements.extend(migration.statements)
        statements.append(insert_version_row(migration, migrations.version_table))
    return Ok(
        Plan(
            applied=done,
            pending=pending,
            statements=tuple(statements),
            disables_foreign_keys=any(
                disables_foreign_keys(s) for m in pending for s in m.statements
            ),
            rows=rows,
            version_table=migrations.version_table,
        )
    )
