"""One-shot pipelines run on the server's event loop only when running them again is
harmless: what :func:`inspect` decides, and that a pipeline that outruns the budget
or meets a lock still runs exactly once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from per_user_db._transports._sqlite import SqliteWorker
from per_user_db.core._hrana import (
    Batch,
    BatchRequest,
    BatchStep,
    CloseRequest,
    CloseSqlRequest,
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
    encode_pipeline_request,
)
from per_user_db.dev import create_protocol_app, protocol_state, serve
from per_user_db.dev._inline import (
    INLINE_ARGUMENTS,
    INLINE_TEXT,
    INLINE_VALUE,
    FastPipelines,
    argument_shape,
    inspect,
)

if TYPE_CHECKING:
    from pathlib import Path

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


def test_only_pipelines_seen_fast_are_remembered_most_recent_first() -> None:
    fast = FastPipelines(limit=2)
    fast.note(("a",), 0.0001)
    fast.note(("b",), 0.0001)
    assert ("a",) in fast  # now the most recent
    fast.note(("c",), 0.0001)
    assert ("a",) in fast
    assert ("b",) not in fast
    fast.note(("a",), 0.5)  # outran the budget: forgotten
    assert ("a",) not in fast
    fast.note(("d",), 0.5)
    assert ("d",) not in fast


def test_large_pipelines_never_run_inline() -> None:
    assert inspect([ex("SELECT 1"), CLOSE]).restartable
    long_sql = "SELECT " + " + ".join(["1"] * INLINE_TEXT)
    assert not inspect([ex(long_sql), CLOSE]).restartable
    assert not inspect([ex("SELECT 1"), ex(long_sql), CLOSE]).restartable
    big = "x" * (INLINE_ARGUMENTS + 1)
    with_text = ExecuteRequest(stmt=Stmt(sql="SELECT ?", args=(big,)))
    assert not inspect([with_text, CLOSE]).restartable
    with_blob = ExecuteRequest(stmt=Stmt(sql="SELECT :b", named_args=((":b", big.encode()),)))
    assert not inspect([with_blob, CLOSE]).restartable
    assert not inspect([plain_batch("SELECT 1"), with_text, CLOSE]).restartable


def test_the_same_sql_with_larger_values_is_another_pipeline() -> None:
    def shape(*args: int | str | bytes | None) -> tuple[int, ...]:
        return argument_shape([ExecuteRequest(stmt=Stmt(sql="SELECT ?", args=args)), CLOSE])

    assert shape(10) == shape(12)  # within a factor of two
    assert shape(10) != shape(1_000_000)
    assert shape("ab") != shape("a" * 1000)
    assert shape("ab") != shape(b"ab") or shape(2) != shape("ab")
    assert shape(0) != shape(None)


def test_stored_sql_is_read_as_the_server_reads_it() -> None:
    # Storing a taken id fails on the server (SQL_EXISTS): the first text stays.
    twice: list[StreamRequest] = [
        StoreSqlRequest(sql_id=1, sql="INSERT INTO t VALUES (1)"),
        StoreSqlRequest(sql_id=1, sql="SELECT 1"),
        ExecuteRequest(stmt=Stmt(sql_id=1)),
        ex("SELECT 2"),
        CLOSE,
    ]
    assert not inspect(twice).restartable  # a query after the INSERT
    closed: list[StreamRequest] = [
        StoreSqlRequest(sql_id=1, sql="SELECT 1"),
        CloseSqlRequest(sql_id=1),
        ExecuteRequest(stmt=Stmt(sql_id=1)),
        ex("SELECT 2"),
        CLOSE,
    ]
    assert not inspect(closed).restartable  # id 1 names nothing: maybe a write


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


async def test_new_sql_runs_on_a_worker_first_then_inline(server: Server) -> None:
    key = (("SELECT 41 + 1",), ())  # the SQL, and the sizes of no arguments
    assert key not in server.state.fast_pipelines
    assert await rows(server, "SELECT 41 + 1") == [(42,)]  # timed on a worker
    assert key in server.state.fast_pipelines  # so the next one runs inline
    await rows(server, SLOW_QUERY)
    assert ((SLOW_QUERY,), ()) not in server.state.fast_pipelines  # never inline


async def test_a_pipeline_that_outruns_the_budget_runs_once(server: Server) -> None:
    await rows(server, "CREATE TABLE t (x)")
    # Queries first, then the write, run inline (as if it had been fast before): the
    # slow query is interrupted, and the pipeline runs again on the worker. The write
    # must not have run in the first attempt.
    key = ((SLOW_QUERY, "INSERT INTO t VALUES (1)"), ())
    server.state.fast_pipelines.note(key, 0.0)
    response = await server.pipeline([ex(SLOW_QUERY), ex("INSERT INTO t VALUES (1)"), CLOSE])
    assert all(isinstance(r, StreamOk) for r in response.results), response.results
    assert await rows(server, "SELECT count(*) FROM t") == [(1,)]
    # The write first: never inline, since the query after it could be interrupted.
    await server.pipeline([ex("INSERT INTO t VALUES (2)"), ex(SLOW_QUERY), CLOSE])
    assert await rows(server, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]
    # Forgotten: the next time, straight to the worker.
    assert key not in server.state.fast_pipelines


async def test_a_transaction_batch_that_outruns_the_budget_commits_once(server: Server) -> None:
    await rows(server, "CREATE TABLE t (x)")
    batch = transaction_batch("INSERT INTO t VALUES (1)", SLOW_QUERY, "INSERT INTO t VALUES (2)")
    server.state.fast_pipelines.note((inspect([batch, CLOSE]).key, ()), 0.0)  # tried inline
    response = await server.pipeline([batch, CLOSE])
    first = response.results[0]
    assert isinstance(first, StreamOk)
    assert await rows(server, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]


async def test_a_write_that_meets_a_lock_waits_and_runs_once(server: Server) -> None:
    await rows(server, "CREATE TABLE t (x)")
    held = await server.pipeline([ex("BEGIN IMMEDIATE"), ex("INSERT INTO t VALUES (0)")])
    assert held.baton is not None
    # Tried inline, it fails at once on the lock; on the worker it waits for it.
    server.state.fast_pipelines.note((("INSERT INTO t VALUES (1)",), ()), 0.0)
    waiting = asyncio.ensure_future(server.pipeline([ex("INSERT INTO t VALUES (1)"), CLOSE]))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await server.pipeline([ex("COMMIT"), CLOSE], baton=held.baton)
    response = await waiting
    assert isinstance(response.results[0], StreamOk), response.results
    assert await rows(server, "SELECT x FROM t ORDER BY x") == [(0,), (1,)]


async def test_values_past_the_inline_limit_run_on_a_worker_and_once(server: Server) -> None:
    await rows(server, "CREATE TABLE t (x)")
    insert = f"INSERT INTO t VALUES (randomblob({INLINE_VALUE * 4}))"
    server.state.fast_pipelines.note(((insert,), ()), 0.0)  # as if it had been fast
    await rows(server, insert)  # inline: SQLITE_TOOBIG, undone; then on a worker
    assert await rows(server, "SELECT count(*), length(x) FROM t") == [(1, INLINE_VALUE * 4)]
    read = "SELECT x FROM t"
    server.state.fast_pipelines.note(((read,), ()), 0.0)
    (blob,) = (await rows(server, read))[0]
    assert isinstance(blob, bytes)
    assert len(blob) == INLINE_VALUE * 4


@pytest.mark.parametrize("inline", [True, False])
async def test_a_server_may_keep_every_request_off_its_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    on_the_loop: list[object] = []
    run_inline = SqliteWorker.run_inline

    def counted(worker: SqliteWorker, fn: Any, *, budget: float) -> Any:
        on_the_loop.append(fn)
        return run_inline(worker, fn, budget=budget)

    monkeypatch.setattr(SqliteWorker, "run_inline", counted)
    app = create_protocol_app(tmp_path, inline=inline)  # --no-inline: inline=False
    await protocol_state(app).create_database("main")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        for _ in range(3):
            body = encode_pipeline_request(None, [ex("SELECT 1"), CLOSE])
            url = address.database_url("main") + "v2/pipeline"
            async with session.post(url, data=body) as response:
                assert response.status == 200
    # The first is timed on a worker either way; the others run inline unless told not.
    assert len(on_the_loop) == (2 if inline else 0)
