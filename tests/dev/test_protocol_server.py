"""The local protocol server, spoken to over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp

from per_user_db.core._hrana import (
    Batch,
    BatchRequest,
    BatchResponse,
    BatchStep,
    CloseRequest,
    CloseSqlRequest,
    CursorErrorEntry,
    DescribeRequest,
    DescribeResponse,
    ExecuteRequest,
    ExecuteResponse,
    GetAutocommitRequest,
    GetAutocommitResponse,
    NotCond,
    OkCond,
    RowEntry,
    SequenceRequest,
    StepBeginEntry,
    StepEndEntry,
    StepErrorEntry,
    Stmt,
    StoreSqlRequest,
    StreamError,
    StreamOk,
    StreamResult,
    decode_cursor_entry,
    decode_cursor_header,
    encode_cursor_request,
    encode_pipeline_request,
)
from per_user_db.dev import Access, create_protocol_app, protocol_state, serve

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import Server


def ex(sql: str, *args: object, **named: object) -> ExecuteRequest:
    return ExecuteRequest(
        stmt=Stmt(
            sql=sql,
            args=tuple(args),  # type: ignore[arg-type]
            named_args=tuple((f":{k}", v) for k, v in named.items()),  # type: ignore[misc]
        )
    )


def rows(result: StreamResult) -> list[tuple[object, ...]]:
    assert isinstance(result, StreamOk), result
    assert isinstance(result.response, ExecuteResponse)
    return list(result.response.result.rows)


def error_code(result: StreamResult) -> str | None:
    assert isinstance(result, StreamError), result
    return result.error.code


async def test_execute_with_positional_and_named_args(server: Server) -> None:
    response = await server.pipeline(
        [
            ex("CREATE TABLE t(a INTEGER, b TEXT)"),
            ex("INSERT INTO t VALUES (?, ?)", 1, "one"),
            ex("INSERT INTO t VALUES (:a, :b)", a=2**62, b=None),
            ex("SELECT a, b FROM t ORDER BY a"),
            CloseRequest(),
        ]
    )
    assert response.baton is None  # closed
    assert rows(response.results[3]) == [(1, "one"), (2**62, None)]
    inserted = response.results[1]
    assert isinstance(inserted, StreamOk)
    assert isinstance(inserted.response, ExecuteResponse)
    assert inserted.response.result.last_insert_rowid == 1


async def test_sql_errors_are_in_band(server: Server) -> None:
    response = await server.pipeline([ex("SELEKT"), ex("SELECT 1"), CloseRequest()])
    assert error_code(response.results[0]) == "SQL_PARSE_ERROR"
    assert rows(response.results[1]) == [(1,)]


def _atomic(*sql: str) -> BatchRequest:
    steps = [BatchStep(stmt=Stmt(sql="BEGIN"))]
    for text in sql:
        steps.append(BatchStep(stmt=Stmt(sql=text), condition=OkCond(step=len(steps) - 1)))
    commit = len(steps)
    steps.append(BatchStep(stmt=Stmt(sql="COMMIT"), condition=OkCond(step=commit - 1)))
    steps.append(BatchStep(stmt=Stmt(sql="ROLLBACK"), condition=NotCond(cond=OkCond(step=commit))))
    return BatchRequest(batch=Batch(steps=tuple(steps)))


async def test_batch_is_atomic(server: Server) -> None:
    await server.pipeline([ex("CREATE TABLE t(a INTEGER UNIQUE)"), CloseRequest()])
    failed = await server.pipeline(
        [_atomic("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)"), CloseRequest()]
    )
    result = failed.results[0]
    assert isinstance(result, StreamOk)
    assert isinstance(result.response, BatchResponse)
    errors = result.response.result.step_errors
    assert errors[2] is not None
    # sqld's code is the primary one; the message names the constraint.
    assert errors[2].code == "SQLITE_CONSTRAINT"
    assert "UNIQUE constraint failed" in errors[2].message
    assert result.response.result.step_results[3] is None  # COMMIT skipped
    check = await server.pipeline([ex("SELECT count(*) FROM t"), CloseRequest()])
    assert rows(check.results[0]) == [(0,)]
    await server.pipeline([_atomic("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)")])
    check = await server.pipeline([ex("SELECT count(*) FROM t"), CloseRequest()])
    assert rows(check.results[0]) == [(2,)]


async def test_interactive_transaction_across_requests(server: Server) -> None:
    await server.pipeline([ex("CREATE TABLE t(a)"), CloseRequest()])
    first = await server.pipeline([ex("BEGIN"), ex("INSERT INTO t VALUES (1)")])
    assert first.baton is not None
    second = await server.pipeline([ex("INSERT INTO t VALUES (2)")], baton=first.baton)
    assert second.baton not in (None, first.baton)  # rotated
    # Another stream does not see the uncommitted rows.
    outside = await server.pipeline([ex("SELECT count(*) FROM t"), CloseRequest()])
    assert rows(outside.results[0]) == [(0,)]
    await server.pipeline([ex("COMMIT"), CloseRequest()], baton=second.baton)
    after = await server.pipeline([ex("SELECT count(*) FROM t"), CloseRequest()])
    assert rows(after.results[0]) == [(2,)]

    begun = await server.pipeline([ex("BEGIN"), ex("INSERT INTO t VALUES (3)")])
    await server.pipeline([ex("ROLLBACK"), CloseRequest()], baton=begun.baton)
    after = await server.pipeline([ex("SELECT count(*) FROM t"), CloseRequest()])
    assert rows(after.results[0]) == [(2,)]


async def test_used_and_unknown_batons_are_400(server: Server) -> None:
    first = await server.pipeline([ex("SELECT 1")])
    assert first.baton is not None
    await server.pipeline([ex("SELECT 2")], baton=first.baton)
    status, body = await server.post(
        "/db/main/v3/pipeline", encode_pipeline_request(first.baton, [ex("SELECT 3")])
    )
    assert status == 400
    assert "unknown baton" in json.loads(body)["error"]
    status, _ = await server.post(
        "/db/main/v3/pipeline", encode_pipeline_request("made-up", [ex("SELECT 3")])
    )
    assert status == 400


async def test_idle_stream_expires(server: Server) -> None:
    first = await server.pipeline([ex("BEGIN")])
    await asyncio.sleep(0.7)  # the fixture's idle timeout is 0.5 s
    status, body = await server.post(
        "/db/main/v3/pipeline", encode_pipeline_request(first.baton, [ex("COMMIT")])
    )
    assert status == 400
    assert json.loads(body)["code"] == "STREAM_EXPIRED"
    assert server.state.open_streams == 0


async def test_sequence_describe_and_stored_sql(server: Server) -> None:
    response = await server.pipeline(
        [
            SequenceRequest(sql="CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 'x');"),
            DescribeRequest(sql="SELECT a, b FROM t WHERE a = ?"),
            StoreSqlRequest(sql_id=7, sql="SELECT b FROM t WHERE a = ?"),
            ExecuteRequest(stmt=Stmt(sql_id=7, args=(1,))),
            StoreSqlRequest(sql_id=7, sql="SELECT 1"),
            CloseSqlRequest(sql_id=7),
            ExecuteRequest(stmt=Stmt(sql_id=7)),
            CloseRequest(),
        ]
    )
    assert isinstance(response.results[0], StreamOk)
    described = response.results[1]
    assert isinstance(described, StreamOk)
    assert isinstance(described.response, DescribeResponse)
    assert [c.name for c in described.response.result.cols] == ["a", "b"]
    assert len(described.response.result.params) == 1
    assert described.response.result.is_readonly
    assert rows(response.results[3]) == [("x",)]
    assert error_code(response.results[4]) == "SQL_EXISTS"
    assert error_code(response.results[6]) == "SQL_NOT_FOUND"


async def test_get_autocommit_is_v3_only(server: Server) -> None:
    v3 = await server.pipeline(
        [GetAutocommitRequest(), ex("BEGIN"), GetAutocommitRequest(), CloseRequest()]
    )
    flags = []
    for index in (0, 2):
        result = v3.results[index]
        assert isinstance(result, StreamOk)
        assert isinstance(result.response, GetAutocommitResponse)
        flags.append(result.response.is_autocommit)
    assert flags == [True, False]
    v2 = await server.pipeline([GetAutocommitRequest(), CloseRequest()], version=2)
    assert error_code(v2.results[0]) == "NOT_SUPPORTED"


async def test_cursor_streams_steps_as_lines(server: Server) -> None:
    batch = Batch(
        steps=(
            BatchStep(stmt=Stmt(sql="SELECT 1 AS a UNION ALL SELECT 2")),
            BatchStep(stmt=Stmt(sql="SELEKT")),
            BatchStep(stmt=Stmt(sql="SELECT 3"), condition=OkCond(step=1)),
        )
    )
    status, body = await server.post("/db/main/v3/cursor", encode_cursor_request(None, batch))
    assert status == 200
    header_line, *entry_lines = body.splitlines()
    assert decode_cursor_header(header_line).baton is not None
    entries = [decode_cursor_entry(line) for line in entry_lines]
    assert isinstance(entries[0], StepBeginEntry)
    assert [c.name for c in entries[0].cols] == ["a"]
    assert entries[1:3] == [RowEntry(row=(1,)), RowEntry(row=(2,))]
    assert isinstance(entries[3], StepEndEntry)
    assert isinstance(entries[4], StepErrorEntry)
    assert entries[4].step == 1
    assert len(entries) == 5  # step 2 skipped: no lines
    assert not any(isinstance(e, CursorErrorEntry) for e in entries)


async def test_http_level_errors(server: Server) -> None:
    status, body = await server.post("/db/nosuchdb/v3/pipeline", encode_pipeline_request(None, []))
    assert status == 404
    assert "does not exist" in json.loads(body)["error"]
    status, body = await server.post("/db/main/v3/pipeline", b"{not json")
    assert status == 400
    assert "not valid JSON" in json.loads(body)["error"]
    status, body = await server.post("/db/Bad_Name/v3/pipeline", b"{}")
    assert status == 404
    status, body = await server.post("/nowhere", b"")
    assert status == 404
    assert "error" in json.loads(body)
    async with server.session.get(server.address.url + "/health") as r:
        assert r.status == 200
    async with server.session.get(server.address.database_url("main") + "version") as r:
        assert r.status == 200


async def test_request_counts(server: Server) -> None:
    server.state.counts.reset()
    await server.pipeline([ex("SELECT 1"), CloseRequest()])
    await server.pipeline([ex("SELECT 1"), CloseRequest()], db="other", version=2)
    counts = server.state.counts
    assert counts.count(route="v3/pipeline") == 1
    assert counts.count(route="v2/pipeline", database="other") == 1
    assert counts.by_database() == {"main": 1, "other": 1}
    counts.reset()
    assert counts.count() == 0


async def test_two_databases_run_in_parallel(server: Server) -> None:
    slow = ex(
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3000000) "
        "SELECT count(*) FROM r"
    )
    slow_task = asyncio.ensure_future(server.pipeline([slow, CloseRequest()], db="main"))
    await asyncio.sleep(0.05)
    quick = await server.pipeline([ex("SELECT 1"), CloseRequest()], db="other")
    assert rows(quick.results[0]) == [(1,)]
    # Had the two run one after the other, the slow one would have answered first.
    assert not slow_task.done(), "the quick query waited for the slow one"
    assert rows((await slow_task).results[0]) == [(3000000,)]


async def test_authorize_hook_and_read_only_access(tmp_path: Path) -> None:
    async def authorize(token: str | None, database: str) -> Access | None:
        return {"rw": Access.READ_WRITE, "ro": Access.READ_ONLY}.get(token or "")

    app = create_protocol_app(tmp_path, authorize=authorize)
    await protocol_state(app).create_database("db")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        url = address.database_url("db") + "v3/pipeline"

        async def post(token: str | None, *requests: ExecuteRequest) -> tuple[int, bytes]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = encode_pipeline_request(None, [*requests, CloseRequest()])
            async with session.post(url, data=body, headers=headers) as r:
                return r.status, await r.read()

        status, body = await post(None, ex("SELECT 1"))
        assert status == 401
        assert "error" in json.loads(body)
        status, _ = await post("wrong", ex("SELECT 1"))
        assert status == 401
        status, _ = await post("rw", ex("CREATE TABLE t(a)"), ex("INSERT INTO t VALUES (1)"))
        assert status == 200
        status, body = await post(
            "ro", ex("INSERT INTO t VALUES (2)"), ex("SELECT count(*) FROM t")
        )
        assert status == 200
        results = json.loads(body)["results"]
        assert results[0]["type"] == "error"
        assert results[0]["error"]["code"] == "SQLITE_READONLY"
        assert "read-only access" in results[0]["error"]["message"]
        assert results[1]["response"]["result"]["rows"] == [[{"type": "integer", "value": "1"}]]


async def test_create_on_demand_and_delete(tmp_path: Path) -> None:
    app = create_protocol_app(tmp_path, create_on_demand=True)
    state = protocol_state(app)
    async with serve(app) as address, aiohttp.ClientSession() as session:
        body = encode_pipeline_request(None, [ex("SELECT 1"), CloseRequest()])
        async with session.post(address.database_url("fresh") + "v3/pipeline", data=body) as r:
            assert r.status == 200
        assert state.database_exists("fresh")
        assert await state.delete_database("fresh")
        assert not (tmp_path / "fresh.db").exists()
        assert not await state.delete_database("fresh")
