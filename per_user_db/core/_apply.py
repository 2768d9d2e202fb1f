"""Applying a plan, sans I/O: the requests to send, and what their results mean.

Reading costs one request: does the version table exist, and its rows. Applying costs one
more, a single batch that is all-or-nothing::

    [PRAGMA foreign_keys = OFF]          only for table rebuilds; outside the transaction,
                                         where SQLite honours it
    batch:
      BEGIN IMMEDIATE                    take the write lock first
      CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (...)
      version guard                      compare-and-set: fails if the version rows are
                                         not what the plan was made from
      [foreign keys off guard]           for table rebuilds: fails unless the pragma
                                         before the batch really switched them off
      every pending statement, and each migration's version row
      [foreign key check, and a guard that fails if it found rows]
      COMMIT
      ROLLBACK                           only if COMMIT did not run or failed
    [PRAGMA foreign_keys = ON]

Each step runs only if the one before it succeeded, so the first failure skips the rest
and the final ROLLBACK undoes everything. A failing guard means another migrator got
there first: re-read, re-plan, try again. No advisory lock exists that a crashed process
could leave behind: the transaction is the lock.

A guard fails by asking ``json_extract`` for a path that is not a JSON path; SQLite
rejects it with an error that quotes the path, which carries our marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ._hrana import (
    Batch,
    BatchRequest,
    BatchResponse,
    BatchStep,
    ExecuteRequest,
    ExecuteResponse,
    HranaError,
    NotCond,
    OkCond,
    Stmt,
    StmtResult,
    StreamError,
    StreamOk,
)
from ._migration_errors import (
    ForeignKeyViolation,
    ForeignKeyViolations,
    MigrationUnavailable,
    StatementFailed,
)
from ._planner import VERSION_TABLE, Plan, create_version_table, select_version_rows
from ._result import Err, Ok, Result

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._hrana import StreamRequest, StreamResult
    from ._migrations import Migration

__all__ = [
    "FK_GUARD_MARKER",
    "FK_OFF_MARKER",
    "VERSION_GUARD_MARKER",
    "Applied",
    "ApplyProgram",
    "Retry",
    "RetryReason",
    "apply_program",
    "interpret_apply",
    "is_busy",
    "read_requests",
    "read_version_rows",
]

VERSION_GUARD_MARKER = "per-user-db: version table changed"
FK_GUARD_MARKER = "per-user-db: foreign key violations"
FK_OFF_MARKER = "per-user-db: foreign keys are on"
_MAX_VIOLATIONS = 100


def _stmt(sql: str, *, want_rows: bool = False) -> Stmt:
    return Stmt(sql=sql, want_rows=want_rows)


def read_requests(table: str = VERSION_TABLE) -> tuple[StreamRequest, ...]:
    """One round trip: whether the version table exists, and its rows if it does."""
    exists = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
    return (
        ExecuteRequest(stmt=_stmt(exists, want_rows=True)),
        ExecuteRequest(stmt=_stmt(select_version_rows(table), want_rows=True)),
    )


def read_version_rows(
    results: Sequence[StreamResult], *, database: str
) -> Result[list[tuple[object, object]], MigrationUnavailable]:
    """The ``(hash, created_at)`` rows from the results of :func:`read_requests`."""
    exists, rows = results
    match exists:
        case StreamOk(response=ExecuteResponse(result=found)) if found.rows:
            if found.rows[0][0] == 0:
                return Ok([])
        case StreamError(error=error):
            return Err(_unavailable(database, error))
        case _:
            return Err(_unavailable(database, HranaError(message="unexpected answer")))
    match rows:
        case StreamOk(response=ExecuteResponse(result=result)):
            return Ok([(row[0], row[1]) for row in result.rows])
        case StreamError(error=error):
            return Err(_unavailable(database, error))
        case _:
            return Err(_unavailable(database, HranaError(message="unexpected answer")))


def _unavailable(database: str, error: HranaError) -> MigrationUnavailable:
    return MigrationUnavailable(
        database=database, code=error.code or "SQL_ERROR", message=error.message
    )


def _guard(condition: str, marker: str) -> Stmt:
    return _stmt(f"SELECT json_extract('{{}}', CASE WHEN {condition} THEN '$' ELSE '{marker}' END)")


def _version_guard(plan: Plan) -> Stmt:
    count = len(plan.rows)
    newest = plan.rows[-1].created_at if plan.rows else -1
    table = plan.version_table
    condition = (
        f'(SELECT count(*) FROM "{table}") = {count} AND '
        f'(SELECT coalesce(max(created_at), -1) FROM "{table}") = {newest}'
    )
    return _guard(condition, VERSION_GUARD_MARKER)


class Role(Enum):
    BEGIN = "begin"
    CREATE_TABLE = "create table"
    VERSION_GUARD = "version guard"
    FK_OFF_GUARD = "foreign keys off guard"
    STATEMENT = "statement"
    VERSION_ROW = "version row"
    FK_LIST = "foreign key check"
    FK_GUARD = "foreign key guard"
    COMMIT = "commit"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    role: Role
    migration: Migration | None = None
    number: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyProgram:
    """The requests that apply ``plan`` in one round trip, and the role of each step."""

    plan: Plan
    requests: tuple[StreamRequest, ...]
    batch_index: int
    steps: tuple[Step, ...]


def apply_program(plan: Plan) -> ApplyProgram:
    steps: list[Step] = [
        Step(role=Role.BEGIN),
        Step(role=Role.CREATE_TABLE),
        Step(role=Role.VERSION_GUARD),
    ]
    stmts: list[Stmt] = [
        _stmt("BEGIN IMMEDIATE"),
        _stmt(create_version_table(plan.version_table)),
        _version_guard(plan),
    ]
    if plan.disables_foreign_keys:
        # The pragma travels outside the batch, as its own request: should it fail, the
        # batch still runs, and a rebuild's DROP TABLE with foreign keys on would
        # cascade-delete every child row. Refuse to start instead.
        steps.append(Step(role=Role.FK_OFF_GUARD))
        stmts.append(_guard("(SELECT foreign_keys FROM pragma_foreign_keys) = 0", FK_OFF_MARKER))
    planned = iter(plan.statements)
    for migration in plan.pending:
        for number, _ in enumerate(migration.statements, start=1):
            steps.append(Step(role=Role.STATEMENT, migration=migration, number=number))
            stmts.append(_stmt(next(planned)))
        steps.append(Step(role=Role.VERSION_ROW, migration=migration))
        stmts.append(_stmt(next(planned)))
    if plan.disables_foreign_keys:
        steps.append(Step(role=Role.FK_LIST))
        stmts.append(
            _stmt(
                'SELECT "table", rowid, parent, fkid FROM pragma_foreign_key_check '
                f"LIMIT {_MAX_VIOLATIONS}",
                want_rows=True,
            )
        )
        steps.append(Step(role=Role.FK_GUARD))
        stmts.append(_guard("(SELECT count(*) FROM pragma_foreign_key_check) = 0", FK_GUARD_MARKER))
    steps.append(Step(role=Role.COMMIT))
    stmts.append(_stmt("COMMIT"))
    batch_steps = [BatchStep(stmt=stmts[0])]
    batch_steps += [
        BatchStep(stmt=stmt, condition=OkCond(step=i - 1)) for i, stmt in enumerate(stmts) if i
    ]
    commit = len(batch_steps) - 1
    steps.append(Step(role=Role.ROLLBACK))
    batch_steps.append(
        BatchStep(stmt=_stmt("ROLLBACK"), condition=NotCond(cond=OkCond(step=commit)))
    )
    batch = BatchRequest(batch=Batch(steps=tuple(batch_steps)))
    if plan.disables_foreign_keys:
        requests: tuple[StreamRequest, ...] = (
            ExecuteRequest(stmt=_stmt("PRAGMA foreign_keys = OFF")),
            batch,
            ExecuteRequest(stmt=_stmt("PRAGMA foreign_keys = ON")),
        )
        batch_index = 1
    else:
        requests, batch_index = (batch,), 0
    return ApplyProgram(plan=plan, requests=requests, batch_index=batch_index, steps=tuple(steps))


class RetryReason(Enum):
    VERSION_TABLE_CHANGED = "the version table changed"
    BUSY = "the database was busy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """Committed. ``durations_ms`` is the server-measured time of each migration."""

    durations_ms: dict[str, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    reason: RetryReason


ApplyFailure = StatementFailed | ForeignKeyViolations | MigrationUnavailable


def is_busy(code: str | None, message: str = "") -> bool:
    """Whether an error means "locked by someone else, try again later"."""
    return (code or "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or (
        "database is locked" in message
    )


def _busy(error: HranaError) -> bool:
    return is_busy(error.code, error.message)


def interpret_apply(
    program: ApplyProgram, results: Sequence[StreamResult], *, database: str
) -> Applied | Retry | ApplyFailure:
    """What happened, from the results of ``program.requests``."""
    for index, result in enumerate(results):
        if index != program.batch_index and isinstance(result, StreamError):
            return _unavailable(database, result.error)
    match results[program.batch_index]:
        case StreamOk(response=BatchResponse(result=batch)):
            pass
        case StreamError(error=error):
            return Retry(reason=RetryReason.BUSY) if _busy(error) else _unavailable(database, error)
        case _:
            return _unavailable(database, HranaError(message="unexpected answer to the batch"))
    if len(batch.step_results) != len(program.steps):
        answered = f"{len(batch.step_results)} step results for a batch of {len(program.steps)}"
        return _unavailable(database, HranaError(message=answered, code="PROTOCOL_ERROR"))
    sent = program.requests[program.batch_index]
    assert isinstance(sent, BatchRequest)
    for position, (step, step_error) in enumerate(
        zip(program.steps, batch.step_errors, strict=True)
    ):
        if step_error is None or step.role is Role.ROLLBACK:
            continue
        if step.role is Role.VERSION_GUARD and VERSION_GUARD_MARKER in step_error.message:
            return Retry(reason=RetryReason.VERSION_TABLE_CHANGED)
        if step.role is Role.FK_OFF_GUARD and FK_OFF_MARKER in step_error.message:
            return MigrationUnavailable(
                database=database,
                code="FOREIGN_KEYS_ON",
                message="foreign keys could not be switched off for a table rebuild; "
                "nothing was applied",
            )
        if step.role is Role.FK_GUARD and FK_GUARD_MARKER in step_error.message:
            listed = batch.step_results[step_index(program, Role.FK_LIST)]
            return _violations(program, listed, database)
        if _busy(step_error):
            return Retry(reason=RetryReason.BUSY)
        if step.migration is not None:
            return StatementFailed(
                database=database,
                migration=step.migration.tag,
                statement=step.number,
                sql=sent.batch.steps[position].stmt.sql or "",
                code=step_error.code or "SQL_ERROR",
                message=step_error.message,
            )
        return _unavailable(database, step_error)
    commit = step_index(program, Role.COMMIT)
    if batch.step_results[commit] is None:
        return _unavailable(database, HranaError(message="COMMIT was skipped without an error"))
    durations: dict[str, float] = {}
    for step, step_result in zip(program.steps, batch.step_results, strict=True):
        if step.migration is not None and step_result is not None:
            tag = step.migration.tag
            durations[tag] = durations.get(tag, 0.0) + step_result.query_duration_ms
    return Applied(durations_ms=durations)


def step_index(program: ApplyProgram, role: Role) -> int:
    return next(i for i, step in enumerate(program.steps) if step.role is role)


def _violations(
    program: ApplyProgram, listed: StmtResult | None, database: str
) -> ForeignKeyViolations:
    found: list[ForeignKeyViolation] = []
    for table, rowid, parent, fkid in listed.rows if listed is not None else ():
        found.append(
            ForeignKeyViolation(
                table=str(table),
                rowid=rowid if isinstance(rowid, int) else None,
                parent=str(parent),
                fkid=fkid if isinstance(fkid, int) else -1,
            )
        )
    return ForeignKeyViolations(
        database=database,
        migrations=tuple(m.tag for m in program.plan.pending),
        violations=tuple(found),
    )
