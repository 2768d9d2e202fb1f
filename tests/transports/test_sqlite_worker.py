"""SqliteWorker keeps the event loop free, interrupts on cancel; the Hrana executors."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import TYPE_CHECKING

import pytest

from bench._stall import least_stall
from per_user_db._transports._hrana_sqlite import (
    describe_sql,
    execute_batch,
    execute_sequence,
    execute_stmt,
    split_statements,
)
from per_user_db._transports._sqlite import SqliteWorker, WorkerClosedError
from per_user_db.core._hrana import (
    Batch,
    BatchStep,
    ErrorCond,
    IsAutocommitCond,
    NotCond,
    OkCond,
    Stmt,
)
from per_user_db.core._result import Err, Ok

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

# About a second of pure CPU inside SQLite on a typical machine.
SLOW_QUERY = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3000000) "
    "SELECT count(*) FROM r"
)
ENDLESS_QUERY = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
)


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[SqliteWorker]:
    opened = await SqliteWorker.open(tmp_path / "t.db")
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_slow_query_does_not_stall_the_loop(worker: SqliteWorker) -> None:
    results: list[object] = []

    async def slow() -> None:
        results.append(await worker.run(lambda conn: conn.execute(SLOW_QUERY).fetchall()))

    stall, elapsed = await least_stall(slow)
    assert results[0] == [(3000000,)]
    assert elapsed > 0.2, "the query was too quick to prove anything"
    assert stall < 0.05, f"the loop stalled for {stall * 1000:.0f} ms"


async def test_cancelling_interrupts_the_running_statement(worker: SqliteWorker) -> None:
    task = asyncio.ensure_future(worker.run(lambda conn: conn.execute(ENDLESS_QUERY).fetchall()))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The thread is free again at once: the next job does not wait for the endless query.
    assert await asyncio.wait_for(worker.run(lambda c: c.execute("SELECT 1").fetchone()), 1.0) == (
        1,
    )
    assert time.perf_counter() - started < 0.5


async def test_exceptions_from_the_job_propagate(worker: SqliteWorker) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await worker.run(lambda conn: conn.execute("SELECT * FROM missing"))


async def test_connection_settings(worker: SqliteWorker) -> None:
    assert await worker.run(lambda c: c.execute("PRAGMA foreign_keys").fetchone()) == (1,)
    assert await worker.run(lambda c: c.execute("PRAGMA busy_timeout").fetchone()) == (5000,)
    assert await worker.is_autocommit()
    await worker.run(lambda c: c.execute("BEGIN"))
    assert not await worker.is_autocommit()
    await worker.run(lambda c: c.execute("COMMIT"))
    assert await worker.is_autocommit()


async def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    worker = await SqliteWorker.open(tmp_path / "x.db")
    await worker.close()
    await worker.close()
    assert worker.closed
    with pytest.raises(WorkerClosedError):
        await worker.run(lambda c: None)


async def test_memory_database_keeps_its_tables_between_calls() -> None:
    worker = await SqliteWorker.open(":memory:")
    try:
        await worker.run(lambda c: c.execute("CREATE TABLE t(a)"))
        await worker.run(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        assert await worker.run(lambda c: c.execute("SELECT a FROM t").fetchall()) == [(1,)]
    finally:
        await worker.close()


async def test_read_only_rejects_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    writer = await SqliteWorker.open(path)
    await writer.run(lambda c: c.execute("CREATE TABLE t(a)"))
    await writer.close()
    reader = await SqliteWorker.open(path, read_only=True)
    try:
        outcome = await reader.run(lambda c: execute_stmt(c, Stmt(sql="INSERT INTO t VALUES (1)")))
        assert isinstance(outcome, Err)
        assert outcome.error.code == "SQLITE_READONLY"
    finally:
        await reader.close()


async def test_open_without_create_fails_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await SqliteWorker.open(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


async def test_works_from_a_second_event_loop(tmp_path: Path) -> None:
    worker = await SqliteWorker.open(tmp_path / "y.db")

    async def other_loop() -> object:
        return await worker.run(lambda c: c.execute("SELECT 2").fetchone())

    try:
        assert await asyncio.to_thread(asyncio.run, other_loop()) == (2,)
    finally:
        await worker.close()


# --- executors -----------------------------------------------------------------------------


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    connection.execute("CREATE TABLE child(id INTEGER PRIMARY KEY, parent REFERENCES parent(id))")
    return connection


def test_execute_returns_rows_cols_and_rowids(conn: sqlite3.Connection) -> None:
    inserted = execute_stmt(conn, Stmt(sql="INSERT INTO parent(name) VALUES (?)", args=("a",)))
    assert isinstance(inserted, Ok)
    assert inserted.value.affected_row_count == 1
    assert inserted.value.last_insert_rowid == 1
    selected = execute_stmt(conn, Stmt(sql="SELECT id, name, x'00ff', 1.5, NULL FROM parent"))
    assert isinstance(selected, Ok)
    assert [c.name for c in selected.value.cols] == ["id", "name", "x'00ff'", "1.5", "NULL"]
    assert selected.value.rows == ((1, "a", b"\x00\xff", 1.5, None),)
    assert selected.value.last_insert_rowid is None
    hidden = execute_stmt(conn, Stmt(sql="SELECT * FROM parent", want_rows=False))
    assert isinstance(hidden, Ok)
    assert hidden.value.rows == ()


def test_named_args_with_any_prefix_bind_and_a_missing_one_is_an_error(
    conn: sqlite3.Connection,
) -> None:
    named = ((":a", 1), ("@b", 2), ("c", 3))
    outcome = execute_stmt(conn, Stmt(sql="SELECT :a, @b, $c", named_args=named))
    assert isinstance(outcome, Ok)
    assert outcome.value.rows == ((1, 2, 3),)
    # sqld answers ARGS_INVALID ("value for parameter :d not found"); binding NULL would
    # hide a typo in a parameter name.
    missing = execute_stmt(conn, Stmt(sql="SELECT :a, :d", named_args=named))
    assert isinstance(missing, Err)
    assert missing.error.code == "ARGS_INVALID"
    assert "d" in missing.error.message


@pytest.mark.parametrize(
    ("sql", "args", "code"),
    [
        ("SELEKT 1", (), "SQL_PARSE_ERROR"),
        ("SELECT 1; SELECT 2", (), "SQL_MANY_STATEMENTS"),
        ("  -- nothing\n", (), "SQL_NO_STATEMENT"),
        ("SELECT ?", (), "ARGS_INVALID"),
        ("INSERT INTO child(parent) VALUES (99)", (), "SQLITE_CONSTRAINT_FOREIGNKEY"),
        ("SELECT * FROM nowhere", (), "SQLITE_ERROR"),
    ],
)
def test_errors_map_to_hrana_codes(
    conn: sqlite3.Connection, sql: str, args: tuple[object, ...], code: str
) -> None:
    outcome = execute_stmt(conn, Stmt(sql=sql))
    assert isinstance(outcome, Err)
    assert outcome.error.code == code


def test_unique_violation_code(conn: sqlite3.Connection) -> None:
    execute_stmt(conn, Stmt(sql="INSERT INTO parent(name) VALUES ('a')"))
    outcome = execute_stmt(conn, Stmt(sql="INSERT INTO parent(name) VALUES ('a')"))
    assert isinstance(outcome, Err)
    assert outcome.error.code == "SQLITE_CONSTRAINT_UNIQUE"


def test_stored_sql_ids(conn: sqlite3.Connection) -> None:
    assert isinstance(execute_stmt(conn, Stmt(sql_id=3), {3: "SELECT 3"}), Ok)
    missing = execute_stmt(conn, Stmt(sql_id=4), {3: "SELECT 3"})
    assert isinstance(missing, Err)
    assert missing.error.code == "SQL_NOT_FOUND"


def _transaction(*middle: str) -> Batch:
    steps = [BatchStep(stmt=Stmt(sql="BEGIN"))]
    for sql in middle:
        steps.append(BatchStep(stmt=Stmt(sql=sql), condition=OkCond(step=len(steps) - 1)))
    commit = len(steps)
    steps.append(BatchStep(stmt=Stmt(sql="COMMIT"), condition=OkCond(step=commit - 1)))
    steps.append(BatchStep(stmt=Stmt(sql="ROLLBACK"), condition=NotCond(cond=OkCond(step=commit))))
    return Batch(steps=tuple(steps))


def test_batch_transaction_rolls_back_on_failure(conn: sqlite3.Connection) -> None:
    batch = _transaction(
        "INSERT INTO parent(name) VALUES ('x')", "INSERT INTO child(parent) VALUES (42)"
    )
    outcome = execute_batch(conn, batch)
    assert isinstance(outcome, Ok)
    errors = outcome.value.step_errors
    assert errors[2] is not None
    assert errors[2].code == "SQLITE_CONSTRAINT_FOREIGNKEY"
    assert outcome.value.step_results[3] is None  # COMMIT skipped
    assert outcome.value.step_results[4] is not None  # ROLLBACK ran
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (0,)
    assert not conn.in_transaction


def test_batch_transaction_commits(conn: sqlite3.Connection) -> None:
    outcome = execute_batch(conn, _transaction("INSERT INTO parent(name) VALUES ('x')"))
    assert isinstance(outcome, Ok)
    assert outcome.value.step_results[3] is None  # ROLLBACK skipped
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (1,)


def test_batch_is_autocommit_condition_and_v2_refusal(conn: sqlite3.Connection) -> None:
    batch = Batch(
        steps=(
            BatchStep(stmt=Stmt(sql="SELECT 1")),
            BatchStep(stmt=Stmt(sql="SELECT 2"), condition=IsAutocommitCond()),
            BatchStep(stmt=Stmt(sql="SELECT 3"), condition=ErrorCond(step=0)),
        )
    )
    outcome = execute_batch(conn, batch)
    assert isinstance(outcome, Ok)
    assert outcome.value.step_results[1] is not None
    assert outcome.value.step_results[2] is None
    refused = execute_batch(conn, batch, allow_is_autocommit=False)
    assert isinstance(refused, Err)
    assert refused.error.code == "NOT_SUPPORTED"


def test_sequence_keeps_an_open_transaction(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    assert execute_sequence(
        conn, "INSERT INTO parent(name) VALUES ('a'); INSERT INTO parent(name) VALUES ('b');"
    ) == Ok(None)
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (0,)
    failed = execute_sequence(
        conn, "INSERT INTO parent(name) VALUES ('c'); BOGUS; INSERT INTO parent(name) VALUES ('d')"
    )
    assert isinstance(failed, Err)
    assert conn.execute("SELECT name FROM parent").fetchall() == [("c",)]


def test_split_statements_respects_strings_and_triggers() -> None:
    script = (
        "CREATE TABLE t(a); "
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT ';'; SELECT 2; END; "
        "INSERT INTO t VALUES (';') -- trailing comment"
    )
    parts = split_statements(script)
    assert len(parts) == 3
    assert parts[1].strip().startswith("CREATE TRIGGER")


def test_describe(conn: sqlite3.Connection) -> None:
    query = describe_sql(conn, "SELECT id, name AS n FROM parent WHERE id = :id AND name = ?2;")
    assert isinstance(query, Ok)
    assert [p.name for p in query.value.params] == [":id", "?2"]
    assert [c.name for c in query.value.cols] == ["id", "n"]
    assert query.value.is_readonly
    assert not query.value.is_explain
    write = describe_sql(conn, "INSERT INTO parent(name) VALUES (?)")
    assert isinstance(write, Ok)
    assert [p.name for p in write.value.params] == [None]
    assert not write.value.is_readonly
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (0,), "describe ran it"
    explain = describe_sql(conn, "EXPLAIN QUERY PLAN SELECT * FROM parent")
    assert isinstance(explain, Ok)
    assert explain.value.is_explain
    broken = describe_sql(conn, "SELEKT")
    assert isinstance(broken, Err)
    assert broken.error.code == "SQL_PARSE_ERROR"


def test_rows_affected_of_dml_behind_a_with_clause(conn: sqlite3.Connection) -> None:
    # sqlite3's rowcount is -1 for DML that starts with WITH; sqld counts the rows.
    conn.execute("CREATE TABLE counted (x)")
    inserted = execute_stmt(
        conn,
        Stmt(sql="WITH v(x) AS (VALUES (1), (2), (3)) INSERT INTO counted SELECT x FROM v"),
    )
    updated = execute_stmt(
        conn, Stmt(sql="WITH v(d) AS (VALUES (10)) UPDATE counted SET x = x + (SELECT d FROM v)")
    )
    selected = execute_stmt(conn, Stmt(sql="WITH a AS (SELECT 1) SELECT * FROM a"))
    assert isinstance(inserted, Ok)
    assert isinstance(updated, Ok)
    assert isinstance(selected, Ok)
    assert inserted.value.affected_row_count == 3
    assert updated.value.affected_row_count == 3
    assert selected.value.affected_row_count == 0


def test_last_insert_rowid_comes_with_inserts_only(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE ids (id INTEGER PRIMARY KEY, v UNIQUE)")

    def rowid(sql: str) -> int | None:
        outcome = execute_stmt(conn, Stmt(sql=sql))
        assert isinstance(outcome, Ok)
        return outcome.value.last_insert_rowid

    assert rowid("INSERT INTO ids (v) VALUES ('a')") == 1
    assert rowid("WITH x(v) AS (VALUES ('b')) INSERT INTO ids (v) SELECT v FROM x") == 2
    assert rowid("SELECT 'INSERT INTO ids'") is None  # the word in a string is no insert
    assert rowid("UPDATE ids SET v = 'c' WHERE id = 2") is None
    assert rowid("INSERT OR IGNORE INTO ids (v) VALUES ('a')") is None  # nothing inserted


async def test_a_forked_child_opens_databases_with_threads_of_its_own() -> None:
    import os
    import sys

    if sys.platform != "linux":
        pytest.skip("fork is what this is about")
    from per_user_db._transports import _sqlite

    # Leave an idle carrier thread behind in this process first.
    worker = await SqliteWorker.open(":memory:")
    await worker.close()
    for _ in range(200):  # the carrier files itself as idle on its own thread
        if _sqlite._idle_carriers:
            break
        await asyncio.sleep(0.01)
    assert _sqlite._idle_carriers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its inherited idle carriers have no threads behind them
        code = 1
        try:

            async def child() -> int:
                fresh = await SqliteWorker.open(":memory:")
                try:
                    return int(
                        await fresh.run(lambda conn: conn.execute("SELECT 42").fetchone()[0])
                    )
                finally:
                    await fresh.close()

            value = asyncio.run(asyncio.wait_for(child(), 5))
            os.write(write, str(value).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    answer = os.read(read, 16)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == b"42"
