"""One-shot pipelines borrow a kept connection, and hand it on as a new one would be.

A one-shot pipeline (no baton, ending with ``close``) is what clients send for a plain
query; the server keeps the connection for the next one. Whatever the last client did
to it must not reach the next: a pragma, an open transaction, a temporary table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from per_user_db.core._hrana import (
    CloseRequest,
    ExecuteRequest,
    ExecuteResponse,
    Stmt,
    StreamOk,
)

if TYPE_CHECKING:
    from .conftest import Server


def ex(sql: str) -> ExecuteRequest:
    return ExecuteRequest(stmt=Stmt(sql=sql))


async def one_shot(server: Server, *sql: str) -> list[object]:
    """The first column of the last statement's rows."""
    response = await server.pipeline([*(ex(s) for s in sql), CloseRequest()])
    last = response.results[len(sql) - 1]
    assert isinstance(last, StreamOk), last
    assert isinstance(last.response, ExecuteResponse)
    return [row[0] for row in last.response.result.rows]


async def test_connections_are_reused_and_reset(server: Server) -> None:
    for _ in range(5):
        assert await one_shot(server, "SELECT 1") == [1]
    assert server.state.idle_connections == 1  # one connection served all five

    assert await one_shot(server, "PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys") == [0]
    assert await one_shot(server, "PRAGMA foreign_keys") == [1]

    await one_shot(server, "CREATE TABLE t (x)")
    await one_shot(server, "BEGIN", "INSERT INTO t VALUES (1)")  # left open by its client
    assert await one_shot(server, "SELECT count(*) FROM t") == [0]  # rolled back

    await one_shot(server, "CREATE TEMP TABLE mine (x)", "INSERT INTO mine VALUES (1)")
    leaked = await server.pipeline([ex("SELECT count(*) FROM temp.sqlite_master"), CloseRequest()])
    first = leaked.results[0]
    assert isinstance(first, StreamOk)
    assert isinstance(first.response, ExecuteResponse)
    assert first.response.result.rows == ((0,),)  # that connection was not kept


async def test_deleting_a_database_closes_its_kept_connections(server: Server) -> None:
    await one_shot(server, "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    assert server.state.idle_connections >= 1
    assert await server.state.delete_database("main")
    assert server.state.idle_connections == 0
    await server.state.create_database("main")
    assert await one_shot(server, "SELECT count(*) FROM sqlite_master") == [0]  # a new file


async def test_reaping_kept_connections_races_with_nothing(server: Server) -> None:
    import asyncio

    from per_user_db.core._result import Ok
    from per_user_db.dev import Access

    state = server.state
    await one_shot(server, "SELECT 1")  # one kept connection, expired for the reaper below
    borrowed = await state.borrow("main", Access.READ_WRITE)
    assert isinstance(borrowed, Ok)
    loop = asyncio.get_running_loop()
    await state.give_back("main", Access.READ_WRITE, borrowed.value, reusable=True, now=0.0)
    reaped = asyncio.ensure_future(state.reap_idle(loop.time()))
    await asyncio.sleep(0)  # the reaper is closing the expired connection
    fresh = await state.borrow("main", Access.READ_WRITE)
    assert isinstance(fresh, Ok)
    assert not fresh.value.closed  # never one the reaper is closing
    await state.give_back("main", Access.READ_WRITE, fresh.value, reusable=True, now=loop.time())
    await reaped
    # Given back while the reaper ran, and still kept (not dropped unclosed).
    assert state.idle_connections == 1
    assert await one_shot(server, "SELECT 3") == [3]


async def test_many_concurrent_one_shots_share_a_bounded_set_of_connections(
    server: Server,
) -> None:
    import asyncio

    answers = await asyncio.gather(*(one_shot(server, f"SELECT {n}") for n in range(40)))
    assert answers == [[n] for n in range(40)]
    # At most eight at once per database: more would only contend for the GIL.
    assert 1 <= server.state.idle_connections <= 8


async def test_the_next_client_does_not_see_the_last_ones_rowid(server: Server) -> None:
    await one_shot(server, "CREATE TABLE t (x)")
    await one_shot(server, "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)")
    assert server.state.idle_connections == 1  # the same connection serves the next
    assert await one_shot(server, "SELECT last_insert_rowid()") == [0]
