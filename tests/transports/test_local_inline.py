"""The local transport runs short statements on the event loop's thread, and only those.

A statement that outlasts the inline budget is interrupted, undone by SQLite and run
again on the worker thread; one that meets another connection's lock goes to the worker,
which waits for it. Each test checks that nothing runs twice and the loop stays free.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import TYPE_CHECKING

import anyio

from bench._stall import max_stall, rows_for
from per_user_db import Database, open_database
from per_user_db._transports._local import INLINE_BUDGET, LocalTransport

if TYPE_CHECKING:
    from pathlib import Path


async def opened(path: Path) -> Database:
    db = (await open_database(f"file:{path}", busy_timeout=5.0)).unwrap()
    await db.execute("CREATE TABLE t (x INTEGER)")
    return db


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (n,) = conn.execute("SELECT count(*) FROM t").fetchone()
    return int(n)


def slow_insert(rows: int) -> str:
    return (
        "INSERT INTO t (x) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        f"WHERE x < {rows}) SELECT x FROM c WHERE x % 1000 = 0"
    )


async def slow_rows() -> int:
    # Comfortably past the inline budget on any machine: ~40 budgets' worth.
    return await anyio.to_thread.run_sync(rows_for, INLINE_BUDGET * 40)


async def test_a_write_past_the_budget_runs_once_on_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "slow.db"
    rows = await slow_rows()
    async with await opened(path) as db:
        result = await db.execute(slow_insert(rows))
        assert result.rows_affected == rows // 1000
        assert count(path) == rows // 1000  # interrupted inline, undone, run once more
        transport = db.transport
        assert isinstance(transport, LocalTransport)
        await db.execute(slow_insert(rows))  # remembered as slow: straight to the worker
        assert count(path) == 2 * (rows // 1000)


async def test_an_atomic_batch_past_the_budget_commits_once(tmp_path: Path) -> None:
    path = tmp_path / "batch.db"
    rows = await slow_rows()
    async with await opened(path) as db:
        results = await db.batch(["INSERT INTO t VALUES (-1)", slow_insert(rows)])
        assert [r.rows_affected for r in results] == [1, rows // 1000]
    assert count(path) == 1 + rows // 1000


async def test_a_slow_query_does_not_stall_the_loop(tmp_path: Path) -> None:
    rows = await slow_rows()
    async with await opened(tmp_path / "stall.db") as db:
        sql = f"SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows * 10}) SELECT x FROM c)"  # noqa: E501
        stall, took = await max_stall(lambda: db.execute(sql))
        assert took > 10 * INLINE_BUDGET
        # The inline attempt may hold the loop for the budget, never for the query.
        assert stall < took / 2


async def test_a_locked_database_is_waited_for_on_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    async with await opened(path) as db:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # another process is writing
        holder.execute("INSERT INTO t VALUES (1)")
        asyncio.get_running_loop().call_later(0.2, holder.commit)
        try:
            # Inline, SQLite's busy wait is off: the insert meets the lock at once, goes
            # to the worker, which waits; the loop stays free for the commit above.
            stall, took = await max_stall(lambda: db.execute("INSERT INTO t VALUES (2)"))
        finally:
            holder.close()
        assert took >= 0.15
        assert stall < 0.1
        assert count(path) == 2
        # And the worker's busy wait is back on for what follows.
        rows = await db.execute("SELECT x FROM t ORDER BY x")
        assert [r[0] for r in rows] == [1, 2]


async def test_inline_and_worker_statements_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "order.db"
    rows = await slow_rows()
    async with await opened(path) as db:
        # The slow one goes to the worker; the quick ones behind it must not overtake.
        await asyncio.gather(
            db.execute(slow_insert(rows)),
            db.execute("INSERT INTO t VALUES (-7)"),
            db.execute("SELECT count(*) FROM t"),
        )
        last = await db.execute("SELECT x FROM t ORDER BY rowid DESC LIMIT 1")
        assert last[0][0] == -7


async def test_short_statements_run_on_the_loop_thread_long_ones_on_the_worker(
    tmp_path: Path,
) -> None:
    rows = await slow_rows()
    async with await opened(tmp_path / "threads.db") as db:
        transport = db.transport
        assert isinstance(transport, LocalTransport)
        await transport.run_sqlite(
            lambda conn: conn.create_function("thread_id", 0, threading.get_ident)
        )
        quick = await db.execute("SELECT thread_id()")
        assert quick[0][0] == threading.get_ident()
        slow = await db.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            f"WHERE x < {rows}) SELECT thread_id(), count(*) FROM c"
        )
        assert slow[0][0] != threading.get_ident()
        async with db.transaction() as tx:  # a transaction owns the worker's connection
            inside = await tx.execute("SELECT thread_id()")
            assert inside[0][0] != threading.get_ident()
            await tx.commit()
