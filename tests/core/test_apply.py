"""The apply program (``core._apply``): the one batch that migrates, and what its answers mean.

Two kinds of test. The program is run for real on a SQLite file through
:meth:`Database.pipeline`, so what its SQL does (take the write lock, guard the version
rows, roll back on failure) is SQLite's verdict, not ours. Answers a real database will
not give on demand (busy and locked codes on a given step, an error on the foreign-keys
pragma, a skipped COMMIT) are built as values and interpreted directly: the module is
sans-I/O, so that is its whole input.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from per_user_db import (
    Database,
    ForeignKeyViolation,
    ForeignKeyViolations,
    MigrationSet,
    MigrationUnavailable,
    Ok,
    Plan,
    StatementFailed,
    open_database,
    plan,
)
from per_user_db.core._apply import (
    FK_GUARD_MARKER,
    FK_OFF_MARKER,
    VERSION_GUARD_MARKER,
    Applied,
    ApplyProgram,
    Retry,
    RetryReason,
    apply_program,
    interpret_apply,
    is_busy,
    read_requests,
    read_version_rows,
)
from per_user_db.core._hrana import (
    BatchRequest,
    BatchResponse,
    BatchResult,
    CloseResponse,
    ExecuteRequest,
    ExecuteResponse,
    HranaError,
    NotCond,
    OkCond,
    Stmt,
    StmtResult,
    StreamError,
    StreamOk,
    StreamResult,
)

from ..migration_sets import INIT, REBUILD, WHENS
from .strategies import build_set

DB = "file:user.db"
CREATE_A = ["CREATE TABLE a (id integer PRIMARY KEY, v text NOT NULL);"]
FILL_A = ["INSERT INTO a (v) VALUES ('one');", "INSERT INTO a (v) VALUES ('two');"]
BREAK_A = ["INSERT INTO a (v) VALUES ('three');", "INSERT INTO a (v) VALUES (NULL);"]


def planned(migrations: MigrationSet, rows: list[tuple[object, object]] | None = None) -> Plan:
    result = plan(rows or [], migrations)
    assert isinstance(result, Ok), result
    return result.value


def stmt_result(*rows: tuple[object, ...], duration: float = 0.0) -> StmtResult:
    return StmtResult(
        cols=(),
        rows=tuple(rows),  # type: ignore[arg-type]
        affected_row_count=0,
        last_insert_rowid=None,
        query_duration_ms=duration,
    )


def ok(*rows: tuple[object, ...]) -> StreamOk:
    return StreamOk(response=ExecuteResponse(result=stmt_result(*rows)))


def batch_answer(
    program: ApplyProgram,
    *,
    fail: dict[int, HranaError] | None = None,
    skipped: set[int] | None = None,
    durations: dict[int, float] | None = None,
) -> list[StreamResult]:
    """What a database answers to ``program``: every step ran and succeeded unless
    ``fail`` or ``skipped`` says otherwise. The ROLLBACK step is skipped on success."""
    fail = fail or {}
    skipped = set(skipped or ())
    durations = durations or {}
    steps = len(program.steps)
    if not fail:
        skipped.add(steps - 1)
    results = tuple(
        None if i in fail or i in skipped else stmt_result(duration=durations.get(i, 0.0))
        for i in range(steps)
    )
    errors = tuple(fail.get(i) for i in range(steps))
    batch = StreamOk(
        response=BatchResponse(result=BatchResult(step_results=results, step_errors=errors))
    )
    answers: list[StreamResult] = [ok() for _ in program.requests]
    answers[program.batch_index] = batch
    return answers


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with (
        await open_database(f"file:{tmp_path / 'user.db'}", busy_timeout=0.2)
    ).unwrap() as d:
        yield d


async def run(db: Database, program: ApplyProgram) -> Applied | Retry | object:
    results = await db.pipeline(program.requests)
    return interpret_apply(program, results, database=DB)


async def read_plan(db: Database, migrations: MigrationSet) -> Plan:
    rows = read_version_rows(await db.pipeline(read_requests()), database=DB)
    assert isinstance(rows, Ok), rows
    return planned(migrations, rows.value)


def rows_of(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --- the program ---------------------------------------------------------------------------


def test_the_batch_takes_the_write_lock_first_and_rolls_back_unless_committed() -> None:
    migrations = build_set([CREATE_A, FILL_A], WHENS[:2])
    program = apply_program(planned(migrations))
    assert program.batch_index == 0
    (batch,) = program.requests
    assert isinstance(batch, BatchRequest)
    steps = batch.batch.steps
    sqls = [step.stmt.sql for step in steps]
    # IMMEDIATE: the write lock is taken before the version rows are compared, so no other
    # migrator can change them between the guard and the COMMIT.
    assert sqls[0] == "BEGIN IMMEDIATE"
    assert steps[0].condition is None
    assert sqls[1] == (
        'CREATE TABLE IF NOT EXISTS "__drizzle_migrations" '
        "(id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)"
    )
    assert sqls[3:-2] == list(planned(migrations).statements)
    assert sqls[-2:] == ["COMMIT", "ROLLBACK"]
    # Each step runs only if the one before succeeded; ROLLBACK only if COMMIT did not.
    for index, step in enumerate(steps[1:-1], start=1):
        assert step.condition == OkCond(step=index - 1)
    assert steps[-1].condition == NotCond(cond=OkCond(step=len(steps) - 2))
    assert all(not step.stmt.want_rows for step in steps)
    assert len(program.steps) == len(steps)


def test_the_version_guard_compares_count_and_newest_row() -> None:
    migrations = build_set([CREATE_A, FILL_A], [10, 20])
    first = migrations.migrations[0]
    guard = apply_program(planned(migrations, [(first.hash, 10)])).requests[0]
    assert isinstance(guard, BatchRequest)
    assert guard.batch.steps[2].stmt.sql == (
        "SELECT json_extract('{}', CASE WHEN "
        '(SELECT count(*) FROM "__drizzle_migrations") = 1 AND '
        '(SELECT coalesce(max(created_at), -1) FROM "__drizzle_migrations") = 10 '
        f"THEN '$' ELSE '{VERSION_GUARD_MARKER}' END)"
    )
    fresh = apply_program(planned(migrations)).requests[0]
    assert isinstance(fresh, BatchRequest)
    assert "= 0 AND" in str(fresh.batch.steps[2].stmt.sql)
    assert str(fresh.batch.steps[2].stmt.sql).endswith(
        f"= -1 THEN '$' ELSE '{VERSION_GUARD_MARKER}' END)"
    )


def test_a_rebuild_switches_foreign_keys_off_outside_the_batch_and_checks_them() -> None:
    migrations = build_set([INIT, REBUILD], WHENS[:2])
    program = apply_program(planned(migrations))
    assert program.batch_index == 1
    off, batch, on = program.requests
    assert off == ExecuteRequest(stmt=Stmt(sql="PRAGMA foreign_keys = OFF", want_rows=False))
    assert isinstance(on, ExecuteRequest)
    assert on.stmt.sql == "PRAGMA foreign_keys = ON"
    assert isinstance(batch, BatchRequest)
    sqls = [step.stmt.sql for step in batch.batch.steps]
    # Should the pragma fail or be ignored, the batch stops before the rebuild starts.
    assert sqls[3] == (
        "SELECT json_extract('{}', CASE WHEN (SELECT foreign_keys FROM pragma_foreign_keys) "
        f"= 0 THEN '$' ELSE '{FK_OFF_MARKER}' END)"
    )
    assert sqls[4:-4] == list(planned(migrations).statements)
    assert sqls[-4] == (
        'SELECT "table", rowid, parent, fkid FROM pragma_foreign_key_check LIMIT 100'
    )
    assert batch.batch.steps[-4].stmt.want_rows
    assert sqls[-3] == (
        "SELECT json_extract('{}', CASE WHEN (SELECT count(*) FROM pragma_foreign_key_check) "
        f"= 0 THEN '$' ELSE '{FK_GUARD_MARKER}' END)"
    )
    plain = apply_program(planned(build_set([INIT], WHENS[:1])))
    assert len(plain.requests) == 1
    assert not any("foreign_key" in str(s.stmt.sql) for s in plain.requests[0].batch.steps)  # type: ignore[union-attr]


def test_read_requests_ask_whether_the_table_exists_and_for_its_rows() -> None:
    exists, rows = read_requests("store_migrations")
    assert isinstance(exists, ExecuteRequest)
    assert isinstance(rows, ExecuteRequest)
    assert exists.stmt.sql == (
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'store_migrations'"
    )
    assert rows.stmt.sql == 'SELECT hash, created_at FROM "store_migrations"'
    assert exists.stmt.want_rows
    assert rows.stmt.want_rows


# --- the program, run by SQLite --------------------------------------------------------------


async def test_applied_on_a_real_database_with_each_migrations_duration(
    db: Database, tmp_path: Path
) -> None:
    migrations = build_set([CREATE_A, FILL_A], WHENS[:2])
    result = await run(db, apply_program(await read_plan(db, migrations)))
    assert isinstance(result, Applied)
    assert set(result.durations_ms) == {"0000_m0", "0001_m1"}
    assert rows_of(tmp_path / "user.db", "SELECT v FROM a ORDER BY id") == [("one",), ("two",)]
    assert (await read_plan(db, migrations)).up_to_date


async def test_a_failed_batch_rolls_itself_back(db: Database, tmp_path: Path) -> None:
    migrations = build_set([CREATE_A, FILL_A, BREAK_A], WHENS[:3])
    first = await read_plan(db, build_set([CREATE_A, FILL_A], WHENS[:2]))
    assert isinstance(await run(db, apply_program(first)), Applied)
    program = apply_program(await read_plan(db, migrations))
    results = await db.pipeline(program.requests)
    failure = interpret_apply(program, results, database=DB)
    assert failure == StatementFailed(
        database=DB,
        migration="0002_m2",
        statement=2,
        sql="INSERT INTO a (v) VALUES (NULL);",
        code="SQLITE_CONSTRAINT_NOTNULL",
        message="NOT NULL constraint failed: a.v",
    )
    # The ROLLBACK step itself ran: the batch does not rely on the stream's close.
    batch = results[0]
    assert isinstance(batch, StreamOk)
    assert isinstance(batch.response, BatchResponse)
    assert batch.response.result.step_results[-1] is not None
    assert batch.response.result.step_results[-2] is None  # COMMIT never ran
    assert rows_of(tmp_path / "user.db", "SELECT v FROM a ORDER BY id") == [("one",), ("two",)]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('', 5)", "count only"),
        ("UPDATE __drizzle_migrations SET created_at = 15 WHERE created_at = 20", "newest only"),
        ("DELETE FROM __drizzle_migrations", "both"),
    ],
)
async def test_the_guard_refuses_a_version_table_that_changed_since_the_plan(
    db: Database, tmp_path: Path, change: str, why: str
) -> None:
    migrations = build_set([CREATE_A, FILL_A, ["CREATE TABLE b (x);"]], [10, 20, 30])
    first_two = build_set([CREATE_A, FILL_A], [10, 20])
    assert isinstance(await run(db, apply_program(await read_plan(db, first_two))), Applied)
    stale = apply_program(await read_plan(db, migrations))
    conn = sqlite3.connect(tmp_path / "user.db")
    with conn:
        conn.execute(change)
    conn.close()
    before = rows_of(tmp_path / "user.db", "SELECT hash, created_at FROM __drizzle_migrations")
    assert await run(db, stale) == Retry(reason=RetryReason.VERSION_TABLE_CHANGED), why
    after = rows_of(tmp_path / "user.db", "SELECT hash, created_at FROM __drizzle_migrations")
    assert after == before
    assert rows_of(tmp_path / "user.db", "SELECT name FROM sqlite_master WHERE name = 'b'") == []


async def test_busy_at_begin_immediate_is_a_retry(db: Database, tmp_path: Path) -> None:
    migrations = build_set([CREATE_A], WHENS[:1])
    program = apply_program(await read_plan(db, migrations))
    other = sqlite3.connect(tmp_path / "user.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        results = await db.pipeline(program.requests)
    finally:
        other.execute("ROLLBACK")
        other.close()
    batch = results[0]
    assert isinstance(batch, StreamOk)
    assert isinstance(batch.response, BatchResponse)
    error = batch.response.result.step_errors[0]
    assert error is not None
    assert str(error.code).startswith("SQLITE_BUSY")
    assert interpret_apply(program, results, database=DB) == Retry(reason=RetryReason.BUSY)


async def test_foreign_key_violations_list_the_orphans_and_roll_back(
    db: Database, tmp_path: Path
) -> None:
    base = build_set([INIT], WHENS[:1])
    assert isinstance(await run(db, apply_program(await read_plan(db, base))), Applied)
    await db.batch(
        [
            "INSERT INTO parent (id, name) VALUES (1, 'p1'), (2, 'p2')",
            "INSERT INTO child (id, parent_id, v) VALUES (7, 1, 'a'), (8, 2, 'b'), (9, 2, 'c')",
        ]
    )
    lossy = [s.replace("FROM `parent`;", "FROM `parent` WHERE `id` <> 2;") for s in REBUILD]
    migrations = build_set([INIT, lossy], WHENS[:2])
    program = apply_program(await read_plan(db, migrations))
    failure = await run(db, program)
    assert failure == ForeignKeyViolations(
        database=DB,
        migrations=("0001_m1",),
        violations=(
            ForeignKeyViolation(table="child", rowid=8, parent="parent", fkid=0),
            ForeignKeyViolation(table="child", rowid=9, parent="parent", fkid=0),
        ),
    )
    assert rows_of(tmp_path / "user.db", "SELECT id FROM parent ORDER BY id") == [(1,), (2,)]
    assert rows_of(tmp_path / "user.db", "SELECT count(*) FROM __drizzle_migrations") == [(1,)]


# --- answers a real database will not give on demand ----------------------------------------

# Built inside each test, never at import: the program must be the code under test's.


def program() -> ApplyProgram:
    return apply_program(planned(build_set([CREATE_A, FILL_A], WHENS[:2])))


def rebuilding() -> ApplyProgram:
    return apply_program(planned(build_set([INIT, REBUILD], WHENS[:2])))


# Steps of program(): 0 BEGIN, 1 CREATE TABLE, 2 guard, 3 m0 stmt 1, 4 m0 row,
# 5 m1 stmt 1, 6 m1 stmt 2, 7 m1 row, 8 COMMIT, 9 ROLLBACK.


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("SQLITE_BUSY", "database is busy"),
        ("SQLITE_BUSY_SNAPSHOT", "snapshot"),
        ("SQLITE_LOCKED", "database table is locked"),
        ("SQLITE_LOCKED_SHAREDCACHE", "locked"),
        (None, "database is locked"),
        ("SQL_ERROR", "SQLite error: database is locked"),
    ],
)
@pytest.mark.parametrize("step", [0, 2, 5, 8])
def test_busy_or_locked_on_any_step_is_a_retry(code: str | None, message: str, step: int) -> None:
    answer = batch_answer(program(), fail={step: HranaError(message=message, code=code)})
    assert interpret_apply(program(), answer, database=DB) == Retry(reason=RetryReason.BUSY)


@pytest.mark.parametrize(
    ("code", "message"),
    [("SQLITE_LOCKED", "locked"), (None, "database is locked"), ("SQLITE_BUSY", "busy")],
)
def test_busy_or_locked_instead_of_the_batch_is_a_retry(code: str | None, message: str) -> None:
    answer: list[StreamResult] = [StreamError(error=HranaError(message=message, code=code))]
    assert interpret_apply(program(), answer, database=DB) == Retry(reason=RetryReason.BUSY)


def test_another_error_instead_of_the_batch_is_unavailable() -> None:
    error = HranaError(message="no such stream", code="STREAM_EXPIRED")
    assert interpret_apply(program(), [StreamError(error=error)], database=DB) == (
        MigrationUnavailable(database=DB, code="STREAM_EXPIRED", message="no such stream")
    )
    nameless = interpret_apply(
        program(), [StreamError(error=HranaError(message="odd"))], database=DB
    )
    assert nameless == MigrationUnavailable(database=DB, code="SQL_ERROR", message="odd")
    assert interpret_apply(program(), [ok()], database=DB) == MigrationUnavailable(
        database=DB, code="SQL_ERROR", message="unexpected answer to the batch"
    )


@pytest.mark.parametrize("index", [0, 2])
def test_an_error_on_the_foreign_keys_pragma_is_not_ignored(index: int) -> None:
    answer = batch_answer(rebuilding())
    answer[index] = StreamError(error=HranaError(message="not authorized", code="SQLITE_AUTH"))
    assert interpret_apply(rebuilding(), answer, database=DB) == MigrationUnavailable(
        database=DB, code="SQLITE_AUTH", message="not authorized"
    )
    assert isinstance(
        interpret_apply(rebuilding(), batch_answer(rebuilding()), database=DB), Applied
    )


def test_foreign_keys_still_on_inside_the_batch_is_not_a_rebuild_to_run() -> None:
    still_on = HranaError(message=f"bad JSON path: '{FK_OFF_MARKER}'", code="SQLITE_ERROR")
    assert interpret_apply(
        rebuilding(), batch_answer(rebuilding(), fail={3: still_on}), database=DB
    ) == MigrationUnavailable(
        database=DB,
        code="FOREIGN_KEYS_ON",
        message="foreign keys could not be switched off for a table rebuild; nothing was applied",
    )
    # The marker counts only on its own step.
    assert isinstance(
        interpret_apply(rebuilding(), batch_answer(rebuilding(), fail={5: still_on}), database=DB),
        StatementFailed,
    )


def test_a_failing_statement_names_migration_statement_and_sql() -> None:
    error = HranaError(message="no such table: x", code="SQLITE_ERROR")
    assert interpret_apply(program(), batch_answer(program(), fail={6: error}), database=DB) == (
        StatementFailed(
            database=DB,
            migration="0001_m1",
            statement=2,
            sql=FILL_A[1],
            code="SQLITE_ERROR",
            message="no such table: x",
        )
    )
    row = interpret_apply(
        program(), batch_answer(program(), fail={4: HranaError(message="full")}), database=DB
    )
    assert isinstance(row, StatementFailed)
    assert (row.migration, row.statement, row.code) == ("0000_m0", 0, "SQL_ERROR")
    assert row.sql.startswith('INSERT INTO "__drizzle_migrations"')


def test_a_guard_marker_counts_only_on_its_own_step() -> None:
    # A migration's own error that happens to quote the marker is still its failure.
    quoting = HranaError(message=f"bad JSON path: '{VERSION_GUARD_MARKER}'", code="SQLITE_ERROR")
    assert interpret_apply(program(), batch_answer(program(), fail={2: quoting}), database=DB) == (
        Retry(reason=RetryReason.VERSION_TABLE_CHANGED)
    )
    assert isinstance(
        interpret_apply(program(), batch_answer(program(), fail={5: quoting}), database=DB),
        StatementFailed,
    )
    fk_quote = HranaError(message=f"bad JSON path: '{FK_GUARD_MARKER}'", code="SQLITE_ERROR")
    assert isinstance(
        interpret_apply(program(), batch_answer(program(), fail={5: fk_quote}), database=DB),
        StatementFailed,
    )
    other = HranaError(message="malformed JSON", code="SQLITE_ERROR")
    assert interpret_apply(program(), batch_answer(program(), fail={2: other}), database=DB) == (
        MigrationUnavailable(database=DB, code="SQLITE_ERROR", message="malformed JSON")
    )


def test_a_foreign_key_guard_failure_reads_the_listed_violations() -> None:
    steps = len(rebuilding().steps)
    fk_list, fk_guard = steps - 4, steps - 3
    answer = batch_answer(
        rebuilding(),
        fail={fk_guard: HranaError(message=f"bad path '{FK_GUARD_MARKER}'", code="SQLITE_ERROR")},
        skipped={steps - 2},
    )
    batch = answer[1]
    assert isinstance(batch, StreamOk)
    assert isinstance(batch.response, BatchResponse)
    results = list(batch.response.result.step_results)
    results[fk_list] = stmt_result(("child", 3, "parent", 0), ("child", "x", "parent", None))
    answer[1] = StreamOk(
        response=BatchResponse(
            result=BatchResult(
                step_results=tuple(results), step_errors=batch.response.result.step_errors
            )
        )
    )
    assert interpret_apply(rebuilding(), answer, database=DB) == ForeignKeyViolations(
        database=DB,
        migrations=("0000_m0", "0001_m1"),
        violations=(
            ForeignKeyViolation(table="child", rowid=3, parent="parent", fkid=0),
            ForeignKeyViolation(table="child", rowid=None, parent="parent", fkid=-1),
        ),
    )


def test_a_foreign_key_guard_failure_without_a_listing_has_no_violations_to_show() -> None:
    steps = len(rebuilding().steps)
    marker = HranaError(message=f"bad path '{FK_GUARD_MARKER}'", code="SQLITE_ERROR")
    answer = batch_answer(rebuilding(), fail={steps - 3: marker}, skipped={steps - 4})
    assert interpret_apply(rebuilding(), answer, database=DB) == ForeignKeyViolations(
        database=DB, migrations=("0000_m0", "0001_m1"), violations=()
    )


def test_an_error_on_the_rollback_step_is_ignored_and_durations_add_up() -> None:
    answer = batch_answer(program(), durations={3: 1.5, 4: 0.5, 5: 2.0, 6: 3.0, 7: 0.25, 8: 9.0})
    assert interpret_apply(program(), answer, database=DB) == Applied(
        durations_ms={"0000_m0": 2.0, "0001_m1": 5.25}
    )
    rollback = len(program().steps) - 1
    no_transaction = HranaError(message="cannot rollback - no transaction is active")
    answer = batch_answer(program(), durations={3: 1.0})
    batch = answer[0]
    assert isinstance(batch, StreamOk)
    assert isinstance(batch.response, BatchResponse)
    errors = list(batch.response.result.step_errors)
    errors[rollback] = no_transaction
    answer[0] = StreamOk(
        response=BatchResponse(
            result=BatchResult(
                step_results=batch.response.result.step_results, step_errors=tuple(errors)
            )
        )
    )
    assert interpret_apply(program(), answer, database=DB) == Applied(
        durations_ms={"0000_m0": 1.0, "0001_m1": 0.0}
    )


def test_a_commit_skipped_without_an_error_is_not_success() -> None:
    answer = batch_answer(program(), skipped={8})
    assert interpret_apply(program(), answer, database=DB) == MigrationUnavailable(
        database=DB, code="SQL_ERROR", message="COMMIT was skipped without an error"
    )


@pytest.mark.parametrize(
    ("code", "message", "busy"),
    [
        ("SQLITE_BUSY", "", True),
        ("SQLITE_BUSY_RECOVERY", "", True),
        ("SQLITE_LOCKED", "", True),
        ("SQLITE_LOCKED_VTAB", "", True),
        (None, "database is locked", True),
        ("SQLITE_ERROR", "the database is locked (5)", True),
        (None, "", False),
        ("SQLITE_CONSTRAINT", "locked out", False),
        ("SQL_BUSY", "", False),
        ("XSQLITE_BUSY", "", False),
    ],
)
def test_is_busy(code: str | None, message: str, busy: bool) -> None:
    assert is_busy(code, message) is busy


# --- reading the version rows ----------------------------------------------------------------


def test_version_rows_are_read_only_when_the_table_exists() -> None:
    assert read_version_rows([ok((0,)), ok(("h", 1))], database=DB) == Ok([])
    assert read_version_rows([ok((1,)), ok(("h", 1), ("", "2"))], database=DB) == Ok(
        [("h", 1), ("", "2")]
    )


@pytest.mark.parametrize("position", [0, 1])
def test_an_error_reading_the_version_rows_is_unavailable(position: int) -> None:
    results: list[StreamResult] = [ok((1,)), ok()]
    results[position] = StreamError(error=HranaError(message="database is locked", code=None))
    outcome = read_version_rows(results, database=DB)
    assert outcome.is_err()
    assert outcome.error == MigrationUnavailable(  # type: ignore[union-attr]
        database=DB, code="SQL_ERROR", message="database is locked"
    )
    results[position] = StreamOk(response=CloseResponse())
    odd = read_version_rows(results, database=DB)
    assert odd.error == MigrationUnavailable(  # type: ignore[union-attr]
        database=DB, code="SQL_ERROR", message="unexpected answer"
    )


def test_an_empty_answer_to_the_existence_check_is_unexpected() -> None:
    outcome = read_version_rows([ok(), ok()], database=DB)
    assert outcome.error == MigrationUnavailable(  # type: ignore[union-attr]
        database=DB, code="SQL_ERROR", message="unexpected answer"
    )


@pytest.mark.parametrize("missing", [1, 3])
def test_an_answer_for_fewer_steps_than_sent_is_a_protocol_error(missing: int) -> None:
    # Whatever the server did is unknown: a typed error, never an exception out of the
    # migrator, and never Applied.
    answer = batch_answer(program())
    batch = answer[0]
    assert isinstance(batch, StreamOk)
    assert isinstance(batch.response, BatchResponse)
    result = batch.response.result
    answer[0] = StreamOk(
        response=BatchResponse(
            result=BatchResult(
                step_results=result.step_results[:-missing],
                step_errors=result.step_errors[:-missing],
            )
        )
    )
    assert interpret_apply(program(), answer, database=DB) == MigrationUnavailable(
        database=DB,
        code="PROTOCOL_ERROR",
        message=f"{10 - missing} step results for a batch of 10",
    )
