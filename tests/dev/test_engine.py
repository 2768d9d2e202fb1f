"""The local Turso's APSW engine answers like sqld: declared types, exact counts, sqld's codes.

Each test runs the engine's functions on a real SQLite file through APSW, under the
server's guard, as the server does (without HTTP, which the other tests of ``tests/dev``
cover); the last ones run them on a worker with a time limit.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import apsw
import pytest

from per_user_db._transports._sqlite import SqliteWorker
from per_user_db.core._hrana import (
    Batch,
    BatchStep,
    CloseRequest,
    Col,
    ExecuteRequest,
    GetAutocommitRequest,
    GetAutocommitResponse,
    HranaError,
    IsAutocommitCond,
    Stmt,
    StmtResult,
    StreamOk,
)
from per_user_db.core._result import Err, Ok
from per_user_db.dev._engine import (
    SQLD_CODES,
    connect,
    describe_sql,
    execute_batch,
    execute_sequence,
    execute_stmt,
    run_and_reset,
    run_stream_requests,
    sqld_code,
)
from per_user_db.dev._guard import guard_connection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from per_user_db.core._hrana import Value

SCHEMA = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "weight REAL CHECK (weight > 0), photo BLOB, note varchar(20))",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id))",
)
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def open_guarded(path: Path, *, read_only: bool = False) -> apsw.Connection:
    conn = connect(str(path), read_only=read_only, busy_timeout=0.0, create=True)
    guard_connection(read_only=read_only)(conn)
    return conn


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    setup = connect(str(tmp_path / "t.db"), read_only=False, busy_timeout=0.0, create=True)
    setup.execute("PRAGMA journal_mode = WAL")
    for sql in SCHEMA:
        setup.execute(sql)
    setup.close()
    opened = open_guarded(tmp_path / "t.db")
    try:
        yield opened
    finally:
        opened.close()


def ok(conn: apsw.Connection, sql: str, *args: Value) -> StmtResult:
    match execute_stmt(conn, Stmt(sql=sql, args=args)):
        case Ok(result):
            return result
        case Err(error):
            raise AssertionError(f"{sql!r} failed: {error}")


def refused(conn: apsw.Connection, sql: str, *args: Value) -> HranaError:
    outcome = execute_stmt(conn, Stmt(sql=sql, args=args))
    assert isinstance(outcome, Err), f"{sql!r} ran"
    return outcome.error


# --- columns, counts, values ------------------------------------------------------------------


def test_columns_carry_their_declared_types(conn: apsw.Connection) -> None:
    ok(conn, "INSERT INTO parent (name, weight) VALUES ('a', 1.5)")
    result = ok(conn, "SELECT id, name, weight, photo, note, weight * 2 AS twice FROM parent")
    assert result.cols == (
        Col(name="id", decltype="INTEGER"),
        Col(name="name", decltype="TEXT"),
        Col(name="weight", decltype="REAL"),
        Col(name="photo", decltype="BLOB"),
        Col(name="note", decltype="varchar(20)"),  # as declared, like sqld
        Col(name="twice", decltype=None),  # an expression has none
    )
    # Also with no row to read, and for the rows a write returns.
    empty = ok(conn, "SELECT name FROM parent WHERE 0")
    assert empty.cols == (Col(name="name", decltype="TEXT"),)
    assert empty.rows == ()
    returned = ok(conn, "INSERT INTO parent (name) VALUES ('b') RETURNING id, name")
    assert returned.cols == (Col(name="id", decltype="INTEGER"), Col(name="name", decltype="TEXT"))
    assert returned.rows == ((2, "b"),)


def test_affected_row_counts_are_exact(conn: apsw.Connection) -> None:
    inserted = ok(conn, "INSERT INTO parent (name) VALUES ('a'), ('b'), ('c')")
    assert (inserted.affected_row_count, inserted.last_insert_rowid) == (3, 3)
    # sqlite3's rowcount is -1 for a statement that starts with WITH; changes() is exact.
    with_insert = ok(
        conn, "WITH n(v) AS (VALUES ('d'), ('e')) INSERT INTO parent (name) SELECT v FROM n"
    )
    assert (with_insert.affected_row_count, with_insert.last_insert_rowid) == (2, 5)
    updated = ok(conn, "UPDATE parent SET weight = 2 WHERE id > 1")
    assert (updated.affected_row_count, updated.last_insert_rowid) == (4, None)
    # A query reports 0, not the count of the write before it.
    selected = ok(conn, "SELECT * FROM parent")
    assert (selected.affected_row_count, selected.rows_read) == (0, 5)
    deleted = ok(conn, "DELETE FROM parent WHERE name IN ('a', 'b')")
    assert deleted.affected_row_count == 2
    assert ok(conn, "DELETE FROM parent WHERE 0").affected_row_count == 0
    assert ok(conn, "CREATE TABLE other (x)").affected_row_count == 0


def test_values_round_trip_exactly(conn: apsw.Connection) -> None:
    values: tuple[Value, ...] = (
        0,
        -(2**63),
        2**63 - 1,
        1.5,
        -0.0,
        "héllo ✓ \x00 'q'",
        b"\x00\x01\xff",
        b"",
        None,
    )
    result = ok(conn, "SELECT " + ", ".join("?" for _ in values), *values)
    assert result.rows == (values,)
    assert [type(v) for v in result.rows[0]] == [type(v) for v in values]


def test_named_arguments_bind_by_name_and_a_missing_one_is_refused(conn: apsw.Connection) -> None:
    named = ((":a", 1), ("@b", 2), ("c", 3))  # a prefix, another, none
    outcome = execute_stmt(conn, Stmt(sql="SELECT :a, @b, $c", named_args=named))
    assert isinstance(outcome, Ok)
    assert outcome.value.rows == ((1, 2, 3),)
    # sqld: "value for parameter :d not found", never a silent NULL.
    missing = execute_stmt(conn, Stmt(sql="SELECT :a, :d", named_args=named[:1]))
    assert isinstance(missing, Err)
    assert missing.error.code == "ARGS_INVALID"
    assert ":d not found" in missing.error.message


@pytest.mark.parametrize(
    ("sql", "args"),
    [("SELECT ?, ?", (1,)), ("SELECT ?", (1, 2)), ("SELECT ?", (2**63,))],
)
def test_arguments_that_do_not_fit_are_refused(
    conn: apsw.Connection, sql: str, args: tuple[Value, ...]
) -> None:
    assert refused(conn, sql, *args).code == "ARGS_INVALID"


def test_several_statements_are_refused_before_any_runs(conn: apsw.Connection) -> None:
    error = refused(
        conn, "INSERT INTO parent (name) VALUES ('a'); INSERT INTO parent (name) VALUES ('b')"
    )
    assert error.code == "SQL_MANY_STATEMENTS"
    assert ok(conn, "SELECT count(*) FROM parent").rows == ((0,),)  # not even the first
    # Trailing semicolons and comments are not statements.
    assert ok(conn, "SELECT 1;; -- done\n").rows == ((1,),)
    assert refused(conn, "  /* nothing */ ;").code == "SQL_NO_STATEMENT"


# --- sqld's error codes ----------------------------------------------------------------------


def test_the_code_table_is_sqlds() -> None:
    # libsql-server hrana/stmt.rs sqlite_error_code: the primary code's name, whatever the
    # extended code; the codes rusqlite has no name for are SQLITE_UNKNOWN.
    assert sqld_code(apsw.SQLITE_CONSTRAINT_UNIQUE) == "SQLITE_CONSTRAINT"
    assert sqld_code(apsw.SQLITE_BUSY_SNAPSHOT) == "SQLITE_BUSY"
    assert sqld_code(apsw.SQLITE_READONLY_DBMOVED) == "SQLITE_READONLY"
    for unnamed in (apsw.SQLITE_ERROR, apsw.SQLITE_EMPTY, apsw.SQLITE_FORMAT):
        assert sqld_code(unnamed) is None
    for code, name in SQLD_CODES.items():
        assert apsw.mapping_result_codes[name] == code  # SQLITE_<name> is that code's name
    assert len(SQLD_CODES) == 23


@pytest.mark.parametrize(
    ("sql", "code", "message"),
    [
        # A constraint is the primary code; the message says which one.
        ("INSERT INTO parent (id, name) VALUES (1, 'x')", "SQLITE_CONSTRAINT", "UNIQUE"),
        ("INSERT INTO parent (name) VALUES ('a')", "SQLITE_CONSTRAINT", "UNIQUE"),
        ("INSERT INTO parent (name) VALUES (NULL)", "SQLITE_CONSTRAINT", "NOT NULL"),
        ("INSERT INTO parent (name, weight) VALUES ('w', -1)", "SQLITE_CONSTRAINT", "CHECK"),
        ("INSERT INTO child (parent) VALUES (99)", "SQLITE_CONSTRAINT", "FOREIGN KEY"),
        # Rejected while compiling: a syntax error, and an error at a token.
        ("SELEKT 1", "SQL_PARSE_ERROR", 'near "SELEKT": syntax error'),
        ("SELECT 1 +", "SQL_PARSE_ERROR", "incomplete input"),
        ("SELECT nope FROM parent", "SQL_INPUT_ERROR", "no such column: nope (at offset 7)"),
        ("SELECT nope(1)", "SQL_INPUT_ERROR", "no such function: nope"),
        # A plain SQLITE_ERROR at no token: rusqlite has no name for it.
        ("SELECT * FROM nowhere", "SQLITE_UNKNOWN", "no such table: nowhere"),
        ("SELECT json('{')", "SQLITE_UNKNOWN", "malformed JSON"),
        ("SELECT abs(-9223372036854775807 - 1)", "SQLITE_UNKNOWN", "integer overflow"),
        # The guard's refusals.
        ("PRAGMA writable_schema = ON", "SQLITE_AUTH", "not authorized"),
        ("SELECT file FROM pragma_database_list", "SQLITE_AUTH", "not authorized"),
    ],
)
def test_errors_carry_sqlds_codes(conn: apsw.Connection, sql: str, code: str, message: str) -> None:
    ok(conn, "INSERT INTO parent (id, name) VALUES (1, 'a')")
    error = refused(conn, sql)
    assert (error.code, message in error.message) == (code, True), error
    assert "_CONSTRAINT_" not in error.message
    assert ok(conn, "SELECT count(*) FROM parent").rows == ((1,),)  # usable after it


def test_messages_read_as_sqlds(conn: apsw.Connection) -> None:
    ok(conn, "INSERT INTO parent (id, name) VALUES (1, 'a')")
    unique = refused(conn, "INSERT INTO parent (id, name) VALUES (1, 'b')")
    assert unique.message == "SQLite error: UNIQUE constraint failed: parent.id"
    column = refused(conn, "SELECT nope FROM parent")
    assert column.message == "SQL input error: no such column: nope (at offset 7)"


def test_a_read_only_connection_refuses_writes_with_sqlite_readonly(
    conn: apsw.Connection, tmp_path: Path
) -> None:
    reader = open_guarded(tmp_path / "t.db", read_only=True)
    try:
        error = refused(reader, "INSERT INTO parent (name) VALUES ('x')")
        assert error.code == "SQLITE_READONLY"
        assert refused(reader, "PRAGMA query_only = OFF").code == "SQLITE_AUTH"
        assert ok(reader, "SELECT count(*) FROM parent").rows == ((0,),)
    finally:
        reader.close()


def test_a_held_write_lock_is_sqlite_busy(conn: apsw.Connection, tmp_path: Path) -> None:
    holder = open_guarded(tmp_path / "t.db")
    try:
        ok(holder, "BEGIN IMMEDIATE")
        error = refused(conn, "INSERT INTO parent (name) VALUES ('x')")  # busy_timeout 0
        assert error.code == "SQLITE_BUSY"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --- the guard on APSW -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("ATTACH ':memory:' AS other", "SQLITE_AUTH"),
        ("VACUUM INTO '/tmp/per-user-db-engine-copy.db'", "SQLITE_AUTH"),
        ("PRAGMA database_list", "SQLITE_AUTH"),
        ("PRAGMA writable_schema = ON", "SQLITE_AUTH"),
        ("PRAGMA journal_mode = DELETE", "SQLITE_AUTH"),
        # A function refused by the authorizer is an error at its token, as in sqld.
        ("SELECT load_extension('/tmp/evil')", "SQL_INPUT_ERROR"),
        ("SELECT fts3_tokenizer('simple')", "SQL_INPUT_ERROR"),
    ],
)
def test_the_guard_refuses_on_apsw(conn: apsw.Connection, sql: str, code: str) -> None:
    error = refused(conn, sql)
    assert error.code == code
    assert "not authorized" in error.message or "authorization denied" in error.message


def test_the_guard_lets_the_migrators_pragmas_through(conn: apsw.Connection) -> None:
    for sql in (
        "PRAGMA foreign_keys = OFF",
        "PRAGMA foreign_keys = ON",
        "PRAGMA table_info(parent)",
        "SELECT * FROM pragma_foreign_key_check",
        "PRAGMA user_version = 3",
        "PRAGMA journal_mode",
    ):
        ok(conn, sql)
    assert conn.limit(apsw.SQLITE_LIMIT_ATTACHED) == 0


# --- describe, sequence, batch, stream -------------------------------------------------------


def test_describe_is_sqlites_own_answer(conn: apsw.Connection) -> None:
    query = describe_sql(conn, "SELECT id, name AS n, 1 FROM parent WHERE id = :id AND name = ?2")
    assert isinstance(query, Ok)
    assert [p.name for p in query.value.params] == [":id", "?2"]
    assert query.value.cols == (
        Col(name="id", decltype="INTEGER"),
        Col(name="n", decltype="TEXT"),
        Col(name="1", decltype=None),
    )
    assert (query.value.is_readonly, query.value.is_explain) == (True, False)
    write = describe_sql(conn, "INSERT INTO parent (name) VALUES (?) RETURNING id")
    assert isinstance(write, Ok)
    assert write.value.is_readonly is False
    assert write.value.cols == (Col(name="id", decltype="INTEGER"),)  # as sqld: RETURNING too
    assert ok(conn, "SELECT count(*) FROM parent").rows == ((0,),), "describe ran it"
    explain = describe_sql(conn, "EXPLAIN QUERY PLAN SELECT * FROM parent")
    assert isinstance(explain, Ok)
    assert explain.value.is_explain is True
    for sql, code in (("SELEKT", "SQL_PARSE_ERROR"), ("SELECT 1; SELECT 2", "SQL_MANY_STATEMENTS")):
        failed = describe_sql(conn, sql)
        assert isinstance(failed, Err)
        assert failed.error.code == code


def test_a_sequence_stops_at_its_first_error(conn: apsw.Connection) -> None:
    done = execute_sequence(
        conn, "BEGIN; INSERT INTO parent (name) VALUES ('a'); SELECT * FROM parent;"
    )
    assert isinstance(done, Ok)
    assert conn.in_transaction  # not committed behind the client's back
    failed = execute_sequence(
        conn, "INSERT INTO parent (name) VALUES ('b'); SELECT * FROM nowhere; COMMIT"
    )
    assert isinstance(failed, Err)
    assert failed.error.code == "SQLITE_UNKNOWN"
    assert conn.in_transaction  # COMMIT never ran
    conn.execute("ROLLBACK")


def test_batches_and_stream_requests_run_on_apsw(conn: apsw.Connection) -> None:
    batch = Batch(
        steps=(
            BatchStep(stmt=Stmt(sql="BEGIN")),
            BatchStep(stmt=Stmt(sql="INSERT INTO parent (name) VALUES ('a')")),
            BatchStep(stmt=Stmt(sql="INSERT INTO parent (name) VALUES ('a')")),
            BatchStep(stmt=Stmt(sql="SELECT 1"), condition=IsAutocommitCond()),
        )
    )
    outcome = execute_batch(conn, batch)
    assert isinstance(outcome, Ok)
    errors = outcome.value.step_errors
    assert errors[2] is not None
    assert errors[2].code == "SQLITE_CONSTRAINT"
    assert outcome.value.step_results[3] is None  # in a transaction: skipped
    autocommit, _, after = run_stream_requests(
        conn, (GetAutocommitRequest(), CloseRequest(), GetAutocommitRequest()), {}
    )
    assert autocommit == StreamOk(response=GetAutocommitResponse(is_autocommit=False))
    assert after == StreamOk(response=GetAutocommitResponse(is_autocommit=True))
    assert ok(conn, "SELECT count(*) FROM parent").rows == ((0,),)  # close rolled back


def test_a_one_shot_connection_is_reusable_unless_it_keeps_temp_objects(
    conn: apsw.Connection,
) -> None:
    requests = (ExecuteRequest(stmt=Stmt(sql="BEGIN")), CloseRequest())
    _, reusable = run_and_reset(conn, requests, version=3, read_only=False)
    assert reusable
    assert not conn.in_transaction
    requests = (ExecuteRequest(stmt=Stmt(sql="CREATE TEMP TABLE scratch (x)")), CloseRequest())
    _, reusable = run_and_reset(conn, requests, version=3, read_only=False)
    assert not reusable


# --- on a worker: time limit, cancel, inline -------------------------------------------------


async def test_the_time_limit_interrupts_a_runaway_statement(tmp_path: Path) -> None:
    worker = await SqliteWorker.open(
        tmp_path / "w.db",
        connect=connect,
        prepare=guard_connection(read_only=False),
        time_limit=0.2,
    )
    try:
        with_limit = await worker.run(lambda conn: execute_stmt(conn, Stmt(sql=RUNAWAY)))
        assert isinstance(with_limit, Err)
        assert with_limit.error.code == "SQLITE_INTERRUPT"
        again = await worker.run(lambda conn: execute_stmt(conn, Stmt(sql="SELECT 1")))
        assert isinstance(again, Ok)
    finally:
        await worker.close()


async def test_cancelling_interrupts_and_the_worker_goes_on(tmp_path: Path) -> None:
    worker = await SqliteWorker.open(tmp_path / "w.db", connect=connect)
    try:
        running = asyncio.ensure_future(
            worker.run(lambda conn: execute_stmt(conn, Stmt(sql=RUNAWAY)))
        )
        await asyncio.sleep(0.1)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        again = await asyncio.wait_for(
            worker.run(lambda conn: execute_stmt(conn, Stmt(sql="SELECT 2"))), 5
        )
        assert isinstance(again, Ok)
        assert again.value.rows == ((2,),)
        assert await worker.is_autocommit()
    finally:
        await worker.close()


async def test_run_inline_keeps_its_budget_on_apsw(tmp_path: Path) -> None:
    worker = await SqliteWorker.open(tmp_path / "w.db", connect=connect)
    try:
        quick = worker.run_inline(lambda conn: execute_stmt(conn, Stmt(sql="SELECT 3")), budget=1)
        assert isinstance(quick, Ok)
        # The progress handler interrupts it past the budget; the caller retries elsewhere.
        slow = worker.run_inline(lambda conn: execute_stmt(conn, Stmt(sql=RUNAWAY)), budget=0.05)
        assert slow is None
        # The busy wait the inline run turned off is back on for the worker's jobs.
        timeout = await worker.run(lambda conn: conn.execute("PRAGMA busy_timeout").get)
        assert timeout == 5000
    finally:
        await worker.close()


async def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(apsw.CantOpenError):
        await SqliteWorker.open(tmp_path / "missing.db", connect=connect, create=False)
    assert not (tmp_path / "missing.db").exists()
