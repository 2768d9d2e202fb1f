"""One-shot pipelines run on the server's event loop only when running them again is
harmless: what :func:`inspect` decides, and that a pipeline that outruns the budget
or meets a lock still runs exactly once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from per_user_db.core._hrana import (
    Batch,
    BatchRequest,
    BatchStep,
    CloseRequest,
    DescribeRequest,
    ExecuteRequest,
    ExecuteResponse,
    GetAutocommitRequest,
    NotCond,
    OkCond,
    SequenceRequest,
    Stmt,
    StoreSqlRequest,
    StreamOk,
    StreamRequest,
)
from per_user_db.dev._inline import SlowPipelines, inspect

if TYPE_CHECKING:
    from .conftest import Server


def ex(sql: str) -> ExecuteRequest:
    return ExecuteRequest(stmt=Stmt(sql=sql))


def transaction_batch(*sql: str, by_id: bool = False) -> BatchRequest:
    """BEGIN, the statements chained on ok, COMMIT, and ROLLBACK if COMMIT failed: what
    @libsql/client sends for ``batch()``."""
    texts = ["BEGIN IMMEDIATE", *sql, "COMMIT"]
    steps = [
        BatchStep(
            stmt=Stmt(sql_id=i) if by_id else Stmt(sql=text),
            condition=None if i == 0 else OkCond(step=i - 1),
        )
        for i, text in enumerate(texts)
    ]
    steps.append(
        BatchStep(stmt=Stmt(sql="ROLLBACK"), condition=NotCond(cond=OkCond(step=len(texts) - 1)))
    )
    return BatchRequest(batch=Batch(steps=tuple(steps)))


def plain_batch(*sql: str) -> BatchRequest:
    return BatchRequest(batch=Batch(steps=tuple(BatchStep(stmt=Stmt(sql=s)) for s in sql)))


CLOSE = CloseRequest()

RESTARTABLE: list[tuple[str, list[StreamRequest]]] = [
    ("a query", [ex("SELECT 1"), CLOSE]),
    ("one write", [ex("INSERT INTO t VALUES (1)"), CLOSE]),
    ("queries, then one write", [ex("SELECT 1"), ex("VALUES (2)"), ex("DELETE FROM t"), CLOSE]),
    ("a transaction batch", [transaction_batch("INSERT INTO t VALUES (1)", "SELECT 1"), CLOSE]),
    (
        "a transaction batch of stored SQL",
        [
            *(
                StoreSqlRequest(sql_id=i, sql=s)
                for i, s in enumerate(["BEGIN IMMEDIATE", "INSERT INTO t VALUES (1)", "COMMIT"])
            ),
            transaction_batch("INSERT INTO t VALUES (1)", by_id=True),
            CLOSE,
        ],
    ),
    ("a batch of queries", [plain_batch("SELECT 1", "SELECT 2"), CLOSE]),
    ("a batch of one write", [plain_batch("UPDATE t SET x = 1"), GetAutocommitRequest(), CLOSE]),
    ("describe, then a write", [DescribeRequest(sql="SELECT 1"), ex("INSERT INTO t VALUES (1)")]),
]

NOT_RESTARTABLE: list[tuple[str, list[StreamRequest]]] = [
    ("a query after a write", [ex("INSERT INTO t VALUES (1)"), ex("SELECT 1"), CLOSE]),
    ("two writes", [ex("INSERT INTO t VALUES (1)"), ex("INSERT INTO t VALUES (2)"), CLOSE]),
    ("a script", [SequenceRequest(sql="SELECT 1"), CLOSE]),
    ("a batch of two writes", [plain_batch("INSERT INTO t VALUES (1)", "DELETE FROM t"), CLOSE]),
    ("a batch: a query, then a write", [plain_batch("SELECT 1", "DELETE FROM t"), CLOSE]),
    (
        "a transaction batch committing in the middle",
        [
            transaction_batch("INSERT INTO t VALUES (1)", "COMMIT", "INSERT INTO t VALUES (2)"),
            CLOSE,
        ],
    ),
    (
        "a transaction batch with an unconditioned step",
        [
            BatchRequest(
                batch=Batch(
                    steps=(
                        BatchStep(stmt=Stmt(sql="BEGIN")),
                        BatchStep(stmt=Stmt(sql="SELECT 1")),
                        BatchStep(stmt=Stmt(sql="COMMIT"), condition=OkCond(step=1)),
                    )
                )
            ),
            CLOSE,
        ],
    ),
    ("SQL that is not there", [ExecuteRequest(stmt=Stmt(sql_id=7)), ex("SELECT 1"), CLOSE]),
    (
        "a WITH, which may write",
        [ex("WITH x AS (SELECT 1) SELECT * FROM x"), ex("SELECT 1"), CLOSE],
    ),
]


@pytest.mark.parametrize(("name", "requests"), RESTARTABLE, ids=[n for n, _ in RESTARTABLE])
def test_restartable_pipelines(name: str, requests: list[StreamRequest]) -> None:
    assert inspect(requests).restartable, name


@pytest.mark.parametrize(("name", "requests"), NOT_RESTARTABLE, ids=[n for n, _ in NOT_RESTARTABLE])
def test_pipelines_that_must_not_run_twice(name: str, requests: list[StreamRequest]) -> None:
    assert not inspect(requests).restartable, name


def test_what_a_pipeline_may_leave_on_its_connection() -> None:
    plain = inspect([ex("SELECT 1"), CLOSE])
    assert (plain.touches_pragmas, plain.touches_temp) == (False, False)
    assert inspect([ex("PRAGMA recursive_triggers = ON"), CLOSE]).touches_pragmas
    assert inspect([ex("SELECT * FROM pragma_table_info('t')"), CLOSE]).touches_pragmas
    assert inspect([ex("CREATE TEMP TABLE x (y)"), CLOSE]).touches_temp
    assert inspect(
        [StoreSqlRequest(sql_id=1, sql="create temporary view v as select 1")]
    ).touches_temp


def test_slow_pipelines_are_remembered_most_recent_first() -> None:
    slow = SlowPipelines(limit=2)
    slow.note(("a",))
    slow.note(("b",))
    assert slow.seen(("a",))  # now the most recent
    slow.note(("c",))
    assert slow.seen(("a",))
    assert not slow.seen(("b",))
    assert slow.seen(("c",))


# --- on a real server ----------------------------------------------------------------------

# Far past the 2 ms inline budget on any machine.
SLOW_QUERY = (
    "SELECT (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
    "SELECT count(*) FROM n)"
)


async def rows(server: Server, sql: str) -> list[tuple[object, ...]]:
    response = await server.pipeline([ex(sql), CLOSE])
    result = response.results[0]
    assert isinstance(result, StreamOk), result
    assert isinstance(result.response, ExecuteResponse)
    return [tuple(row) for row in result.response.result.rows]


async def test_a_pipeline_that_outruns_the_budget_runs_once(server: Server) -> None:
    await rows(server, "CREATE TABLE t (x)")
    # Queries first, then the write: tried inline, interrupted in the slow query, and
    # run again on the worker. The write must not have run in the first attempt.
    response = await server.pipeline([ex(SLOW_QUERY), ex("INSERT INTO t VALUES (1)"), CLOSE])
    assert all(isinstance(r, StreamOk) for r in response.results), response.results
    assert await rows(server, "SELECT count(*) FROM t") == [(1,)]
    # The write first: never inline, since the query after it could be interrupted.
    await server.pipeline([ex("INSERT INTO t VALUES (2)"), ex(SLOW_QUERY), CLOSE])
    assert await rows(server, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]
    # Remembered: the next time, straight to the worker.
    key = (SLOW_QUERY, "INSERT INTO t VALUES (1)")
    assert server.state.slow_pipelines.seen(key)


async def test_a_transaction_batch_that_outruns_the_budget_commits_once(server: Server) -> None:
    await rows(server, "CREATE TABLE t (x)")
    batch = transaction_batch("INSERT INTO t VALUES (1)", SLOW_QUERY, "INSERT INTO t VALUES (2)")
    response = await server.pipeline([batch, CLOSE])
    first = response.results[0]
    assert isinstance(first, StreamOk)
    assert await rows(server, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]


async def test_a_write_that_meets_a_lock_waits_and_runs_once(server: Server) -> None:
    await rows(server, "CREATE TABLE t (x)")
    held = await server.pipeline([ex("BEGIN IMMEDIATE"), ex("INSERT INTO t VALUES (0)")])
    assert held.baton is not None
    # Tried inline, it fails at once on the lock; on the worker it waits for it.
    waiting = asyncio.ensure_future(server.pipeline([ex("INSERT INTO t VALUES (1)"), CLOSE]))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await server.pipeline([ex("COMMIT"), CLOSE], baton=held.baton)
    response = await waiting
    assert isinstance(response.results[0], StreamOk), response.results
    assert await rows(server, "SELECT x FROM t ORDER BY x") == [(0,), (1,)]
