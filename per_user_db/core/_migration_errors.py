"""Why migrating a database failed: a closed set of error values.

Planner refusals (:class:`~per_user_db.core._planner.Drift` and friends) are passed
through unchanged; the others say what went wrong while applying, naming the migration,
the statement and the database's own message. Nothing here holds a token.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._planner import DatabaseAhead, Drift, InvalidVersionRow, OutOfOrder

__all__ = [
    "ForeignKeyViolation",
    "ForeignKeyViolations",
    "MigrationContention",
    "MigrationError",
    "MigrationUnavailable",
    "StatementFailed",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementFailed:
    """A statement of a migration failed; nothing of the run was committed."""

    database: str
    migration: str
    statement: int
    """1-based position within the migration file (0: the version-table row)."""
    sql: str
    code: str
    message: str

    def __str__(self) -> str:
        sql = self.sql if len(self.sql) <= 200 else self.sql[:197] + "..."
        where = f"statement {self.statement}" if self.statement else "its version row"
        return (
            f"migration {self.migration} failed at {where} on {self.database}: "
            f"{self.code}: {self.message}. SQL: {sql}. Nothing was applied; fix the "
            "migration (or the data it trips over) and connect again"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeignKeyViolation:
    table: str
    rowid: int | None
    parent: str
    fkid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeignKeyViolations:
    """A migration that ran with foreign keys off left rows pointing nowhere: rolled back."""

    database: str
    migrations: tuple[str, ...]
    violations: tuple[ForeignKeyViolation, ...]

    def __str__(self) -> str:
        shown = ", ".join(f"{v.table} rowid {v.rowid} -> {v.parent}" for v in self.violations[:10])
        more = f" (and {len(self.violations) - 10} more)" if len(self.violations) > 10 else ""
        return (
            f"migrations {', '.join(self.migrations)} would leave foreign key violations on "
            f"{self.database}: {shown}{more}. Rolled back; make the migration keep every "
            "reference valid"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationContention:
    """Other migrators kept changing the version table; gave up after ``attempts``."""

    database: str
    attempts: int

    def __str__(self) -> str:
        return (
            f"could not migrate {self.database}: the version table changed under us "
            f"{self.attempts} times in a row, or the database stayed busy. Try again"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationUnavailable:
    """The database could not be reached or answered with an error of its own."""

    database: str
    code: str
    message: str
    status: int | None = None

    def __str__(self) -> str:
        return f"cannot migrate {self.database}: {self.code}: {self.message}"


MigrationError = (
    Drift
    | DatabaseAhead
    | OutOfOrder
    | InvalidVersionRow
    | StatementFailed
    | ForeignKeyViolations
    | MigrationContention
    | MigrationUnavailable
)
