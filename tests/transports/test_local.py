"""The local transport runs SQLite off the event loop; libsql-client's does not."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import libsql_client
import pytest

from bench._stall import least_stall, max_stall, rows_for, slow_query_sql
from per_user_db import Database, DatabaseError, open_database


async def open_file(tmp_path: Path, name: str = "slow.db") -> Database:
    return (await open_database(f"file:{tmp_path / name}")).unwrap()


async def test_a_one_second_query_does_not_stall_the_loop(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    rows = await anyio.to_thread.run_sync(rows_for, 1.0)
    sql = slow_query_sql(rows)
    async with await open_file(tmp_path) as db:
        ours, took = await least_stall(lambda: db.execute(sql))
    assert took > 0.3  # the query really was slow
    assert ours < 0.050

    # The same query through libsql-client's own file: transport, for comparison only.
    client = libsql_client.create_client(f"file:{tmp_path / 'theirs.db'}")
    try:
        theirs, _ = await max_stall(lambda: client.execute(sql))
    finally:
        await client.close()
    record_property("stall_ms_per_user_db", round(ours * 1000, 1))
    record_property("stall_ms_libsql_client_file", round(theirs * 1000, 1))


async def test_cancelling_a_query_leaves_the_database_usable(tmp_path: Path) -> None:
    async with await open_file(tmp_path) as db:
        endless = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
        )
        with anyio.move_on_after(0.2):
            await db.execute(endless)
        assert (await db.execute("SELECT 42"))[0][0] == 42


async def test_a_transaction_owns_the_connection_until_it_ends(tmp_path: Path) -> None:
    db = (await open_database(f"file:{tmp_path / 'tx.db'}", busy_timeout=0.2)).unwrap()
    async with db:
        await db.execute("CREATE TABLE t (x)")
        tx = db.transaction()
        await tx.execute("INSERT INTO t VALUES (1)")
        # Another caller waits for the transaction, then gives up with SQLITE_BUSY.
        with pytest.raises(DatabaseError) as info:
            await db.execute("SELECT count(*) FROM t")
        assert info.value.code == "SQLITE_BUSY"
        waiting = asyncio.ensure_future(db.execute("SELECT count(*) FROM t"))
        await tx.commit()
        assert (await waiting)[0][0] == 1


async def test_an_abandoned_transaction_is_rolled_back(tmp_path: Path) -> None:
    async with await open_file(tmp_path, "abandon.db") as db:
        await db.execute("CREATE TABLE t (x)")
        tx = db.transaction()
        await tx.execute("INSERT INTO t VALUES (1)")
        tx.close()  # synchronous: no chance to send ROLLBACK
        assert (await db.execute("SELECT count(*) FROM t"))[0][0] == 0


async def test_a_pipeline_never_leaves_a_transaction_open(tmp_path: Path) -> None:
    path = tmp_path / "open.db"
    async with await open_file(tmp_path, "open.db") as db:
        await db.execute("CREATE TABLE t (x)")
        await db.execute("BEGIN")  # a one-shot stream: closed, so rolled back
        await db.execute("INSERT INTO t VALUES (1)")
        # Another connection can write: no lock was left behind.
        other = sqlite3.connect(path, timeout=0.1)
        other.execute("INSERT INTO t VALUES (2)")
        other.commit()
        other.close()
        assert (await db.execute("SELECT count(*) FROM t"))[0][0] == 2
