"""The connection object over every transport: a real SQLite file, :memory:, and HTTP to
the local protocol server on 127.0.0.1."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from libsql_client import Client, LibsqlError, ResultSet

from per_user_db import ConnectErrorCode, Database, DatabaseError, Err, Ok, open_database
from per_user_db.core._hrana import Value

from .conftest import LocalServer

TRANSPORTS = ["memory", "file", "http"]


async def open_ok(url: str, token: str | None = None) -> Database:
    result = await open_database(url, token)
    assert isinstance(result, Ok), result
    return result.value


@pytest.fixture(params=TRANSPORTS)
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, server: LocalServer
) -> AsyncIterator[Database]:
    match request.param:
        case "memory":
            url = ":memory:"
        case "file":
            url = f"file:{tmp_path / 'user.db'}"
        case _:
            url = await server.database("user")
    async with await open_ok(url) as database:
        yield database


async def test_is_a_libsql_client_returning_its_types(db: Database) -> None:
    assert isinstance(db, Client)
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    inserted = await db.execute("INSERT INTO t (name) VALUES (?)", ["ada"])
    assert inserted.rows_affected == 1
    assert inserted.last_insert_rowid == 1
    rs = await db.execute("SELECT id, name FROM t")
    assert isinstance(rs, ResultSet)
    assert rs.columns == ("id", "name")
    row = rs[0]
    assert row["name"] == "ada"
    assert row[0] == 1
    assert row.asdict() == {"id": 1, "name": "ada"}


async def test_named_arguments_with_and_without_prefix(db: Database) -> None:
    rs = await db.execute("SELECT :a AS a, @b AS b, $c AS c", {"a": 1, "@b": "two", "$c": None})
    assert rs[0].astuple() == (1, "two", None)


async def test_memory_keeps_its_tables_between_statements() -> None:
    async with await open_ok(":memory:") as db:
        await db.execute("CREATE TABLE kept (x)")
        await db.execute("INSERT INTO kept VALUES (1)")
        assert (await db.execute("SELECT count(*) FROM kept"))[0][0] == 1


async def test_sql_errors_are_libsql_errors_with_codes(db: Database) -> None:
    with pytest.raises(LibsqlError) as info:
        await db.execute("SELEC 1")
    assert info.value.code in ("SQL_PARSE_ERROR", "SQLITE_ERROR")
    await db.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    await db.execute("INSERT INTO u (v) VALUES ('x')")
    with pytest.raises(LibsqlError) as unique:
        await db.execute("INSERT INTO u (v) VALUES ('x')")
    assert unique.value.code.startswith("SQLITE_CONSTRAINT")


async def test_foreign_keys_hold_for_every_statement(db: Database) -> None:
    await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    await db.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent)"
    )
    with pytest.raises(LibsqlError) as info:
        await db.execute("INSERT INTO child (parent_id) VALUES (42)")
    assert info.value.code.startswith("SQLITE_CONSTRAINT")
    assert (await db.execute("PRAGMA foreign_keys"))[0][0] == 1


async def test_foreign_keys_off_does_not_outlive_its_request(db: Database) -> None:
    # Every one-shot request is a fresh stream: a PRAGMA in one does not leak into the next.
    await db.execute("PRAGMA foreign_keys = OFF")
    assert (await db.execute("PRAGMA foreign_keys"))[0][0] == 1
    await db.batch(["PRAGMA foreign_keys = OFF", "SELECT 1"])
    assert (await db.execute("PRAGMA foreign_keys"))[0][0] == 1


async def test_batch_is_atomic(db: Database) -> None:
    await db.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    results = await db.batch(
        [
            "INSERT INTO b (v) VALUES ('one')",
            ("INSERT INTO b (v) VALUES (?)", ["two"]),
            "SELECT count(*) FROM b",
        ]
    )
    assert [r.rows_affected for r in results[:2]] == [1, 1]
    assert results[2][0][0] == 2
    with pytest.raises(LibsqlError) as info:
        await db.batch(
            [
                "INSERT INTO b (v) VALUES ('three')",
                "INSERT INTO b (v) VALUES (NULL)",
                "INSERT INTO b (v) VALUES ('four')",
            ]
        )
    assert info.value.code.startswith("SQLITE_CONSTRAINT")
    rows = await db.execute("SELECT v FROM b ORDER BY id")
    assert [r[0] for r in rows] == ["one", "two"]


async def test_interactive_transaction_commit(db: Database) -> None:
    await db.execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
    await db.execute("INSERT INTO acct VALUES (1, 100), (2, 0)")
    async with db.transaction() as tx:
        balance = (await tx.execute("SELECT balance FROM acct WHERE id = 1"))[0][0]
        assert isinstance(balance, int)
        await tx.execute("UPDATE acct SET balance = ? WHERE id = 1", [balance - 30])
        await tx.execute("UPDATE acct SET balance = balance + 30 WHERE id = 2")
        await tx.commit()
    assert tx.closed
    rows = await db.execute("SELECT balance FROM acct ORDER BY id")
    assert [r[0] for r in rows] == [70, 30]


async def test_interactive_transaction_rollback_and_leaving_the_block(db: Database) -> None:
    await db.execute("CREATE TABLE r (x INTEGER)")
    tx = db.transaction()
    await tx.execute("INSERT INTO r VALUES (1)")
    await tx.rollback()
    with pytest.raises(LibsqlError) as info:
        await tx.execute("INSERT INTO r VALUES (2)")
    assert info.value.code == "TRANSACTION_CLOSED"

    async def fail_inside() -> None:
        async with db.transaction() as tx2:
            await tx2.execute("INSERT INTO r VALUES (3)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert (await db.execute("SELECT count(*) FROM r"))[0][0] == 0


async def test_closed_database_refuses_work(tmp_path: Path) -> None:
    db = await open_ok(f"file:{tmp_path / 'c.db'}")
    await db.close()
    await db.close()  # idempotent
    assert db.closed
    with pytest.raises(LibsqlError) as info:
        await db.execute("SELECT 1")
    assert info.value.code == "CLIENT_CLOSED"


sql_values: st.SearchStrategy[Value] = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    st.binary(max_size=256),
)


def same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("transport", ["file", "http"])
@given(values=st.lists(sql_values, min_size=1, max_size=8))
async def test_every_value_round_trips(
    transport: str, tmp_path: Path, server: LocalServer, values: list[Value]
) -> None:
    url = f"file:{tmp_path / 'v.db'}" if transport == "file" else await server.database("values")
    async with await open_ok(url) as db:
        placeholders = ", ".join("?" for _ in values)
        back = (await db.execute(f"SELECT {placeholders}", tuple(values)))[0].astuple()
        await db.execute("CREATE TABLE IF NOT EXISTS v (x)")
        await db.execute("DELETE FROM v")
        for value in values:
            await db.execute("INSERT INTO v VALUES (?)", [value])
        stored = [r[0] for r in await db.execute("SELECT x FROM v ORDER BY rowid")]
    assert all(same_value(a, b) for a, b in zip(values, back, strict=True)), (values, back)
    assert all(same_value(a, b) for a, b in zip(values, stored, strict=True)), (values, stored)


async def test_open_failures_are_values(tmp_path: Path) -> None:
    missing = await open_database(f"file:{tmp_path / 'no' / 'such' / 'dir.db'}")
    assert isinstance(missing, Err)
    assert missing.error.code is ConnectErrorCode.OPEN_FAILED
    bad = await open_database("libsql://host?authToken=eyJ.secret&x=1")
    assert isinstance(bad, Err)
    assert bad.error.code is ConnectErrorCode.INVALID_URL
    assert "secret" not in str(bad.error)
    insecure = await open_database("http://db.example.com", "eyJ.secret")
    assert isinstance(insecure, Err)
    assert insecure.error.code is ConnectErrorCode.INSECURE_URL
    assert "secret" not in str(insecure.error) + repr(insecure.error)


async def test_repr_hides_the_token(server: LocalServer) -> None:
    url = await server.database("r")
    async with await open_ok(f"{url}?authToken=eyJ.secret.sig") as db:
        assert "secret" not in repr(db)
        assert "secret" not in db.url
        assert "secret" not in repr(db.transport)


async def test_database_error_is_a_libsql_error() -> None:
    error = DatabaseError("gone", "NOT_FOUND", status=404)
    assert isinstance(error, LibsqlError)
    assert error.status == 404
    assert str(error) == "NOT_FOUND: gone"
