"""HTTP transport: what goes on the wire, and every failure a server can answer with.

Faults come from a scripted server on 127.0.0.1 (any status, body, delay or dropped
connection); the rest runs against the local protocol server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from per_user_db import Database, DatabaseError, Ok, open_database
from per_user_db.dev import Access, create_protocol_app, protocol_state, serve

from ..conftest import LocalServer
from ..scripted_server import Recorded, Reply, ScriptedServer, scripted_server

TOKEN = "eyJhbGciOiJFZERTQSJ9.payload.signature-secret"


def pipeline_ok(results: list[Any]) -> dict[str, object]:
    return {"baton": None, "base_url": None, "results": results}


EXECUTE_OK = {
    "type": "ok",
    "response": {
        "type": "execute",
        "result": {
            "cols": [{"name": "x", "decltype": None}],
            "rows": [[{"type": "integer", "value": "9223372036854775807"}]],
            "affected_row_count": 0,
            "last_insert_rowid": None,
        },
    },
}
EMPTY_OK = {
    "type": "ok",
    "response": {
        "type": "execute",
        "result": {"cols": [], "rows": [], "affected_row_count": 0, "last_insert_rowid": None},
    },
}
CLOSE_OK = {"type": "ok", "response": {"type": "close"}}


@pytest.fixture
async def fake() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as server:
        yield server


@pytest.fixture
async def remote(fake: ScriptedServer) -> AsyncIterator[Database]:
    result = await open_database(f"{fake.url}/db/alice?authToken={TOKEN}", request_timeout=0.5)
    assert isinstance(result, Ok)
    async with result.value as db:
        yield db


V3 = "/db/alice/v3/pipeline"
V2 = "/db/alice/v2/pipeline"


async def test_one_request_carries_the_statement_and_close(
    remote: Database, fake: ScriptedServer
) -> None:
    # Turso (sqld) and the local Turso open every connection with foreign keys on, so a
    # one-shot pipeline carries no PRAGMA by default.
    fake.on("POST", V3, Reply(body=pipeline_ok([EXECUTE_OK, CLOSE_OK])))
    rs = await remote.execute("SELECT ?", [1])
    assert rs[0][0] == 2**63 - 1
    (call,) = fake.requests
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "authToken" not in call.query
    body = call.json()
    assert isinstance(body, dict)
    assert body["baton"] is None
    assert [r["type"] for r in body["requests"]] == ["execute", "close"]
    assert body["requests"][0]["stmt"]["args"] == [{"type": "integer", "value": "1"}]
    assert TOKEN.encode() not in call.body


async def test_assert_foreign_keys_opens_every_stream_with_the_pragma(
    fake: ScriptedServer,
) -> None:
    url = f"{fake.url}/db/alice"
    db = (await open_database(url, TOKEN, assert_foreign_keys=True)).unwrap()
    fake.on("POST", V3, Reply(body=pipeline_ok([EMPTY_OK, EXECUTE_OK, CLOSE_OK])))
    rs = await db.execute("SELECT ?", [1])
    assert rs[0][0] == 2**63 - 1  # the pragma's result is hidden from the caller
    body = fake.requests[-1].json()
    assert isinstance(body, dict)
    assert body["requests"][0]["stmt"]["sql"] == "PRAGMA foreign_keys = ON"
    refused = {"type": "error", "error": {"message": "not allowed"}}
    fake.on("POST", V3, Reply(body=pipeline_ok([refused, EXECUTE_OK, CLOSE_OK])))
    with pytest.raises(DatabaseError, match="PRAGMA foreign_keys failed: not allowed"):
        await db.execute("SELECT 1")
    await db.close()


async def test_v3_404_falls_back_to_v2_once_and_remembers(
    remote: Database, fake: ScriptedServer
) -> None:
    fake.on("POST", V3, Reply(status=404, body="not found"))
    fake.on("POST", V2, Reply(body=pipeline_ok([EXECUTE_OK, CLOSE_OK])), repeat=True)
    await remote.execute("SELECT 1")
    await remote.execute("SELECT 1")
    assert (fake.count("POST", V3), fake.count("POST", V2)) == (1, 2)
    assert not remote.transport.supports_v3


@pytest.mark.parametrize(
    ("status", "body", "code", "text"),
    [
        (401, '{"error": "Unauthorized: invalid token"}', "UNAUTHORIZED", "invalid token"),
        (403, '{"error": "database is blocked"}', "FORBIDDEN", "blocked"),
        (429, '{"error": "Too many concurrent requests"}', "RATE_LIMITED", "retry after 2"),
        (500, "Internal Server Error", "SERVER_ERROR", "Internal Server Error"),
        (503, '{"error": "unavailable"}', "SERVER_ERROR", "unavailable"),
        (400, '{"error": "stream expired", "code": "STREAM_EXPIRED"}', "STREAM_EXPIRED", "expired"),
    ],
)
async def test_http_statuses_map_to_codes_and_are_not_retried(
    remote: Database, fake: ScriptedServer, status: int, body: str, code: str, text: str
) -> None:
    fake.on("POST", V3, Reply(status=status, body=body, headers={"Retry-After": "2"}))
    with pytest.raises(DatabaseError) as info:
        await remote.execute("INSERT INTO t VALUES (1)")
    assert info.value.code == code
    assert info.value.status == status
    assert text in str(info.value)
    assert "/db/alice?authToken=***" in str(info.value)
    assert TOKEN not in str(info.value)
    assert len(fake.requests) == 1  # a write is never sent twice


async def test_unknown_database_is_not_found_after_both_versions(
    remote: Database, fake: ScriptedServer
) -> None:
    fake.on("POST", V3, Reply(status=404, body='{"error": "namespace not found"}'))
    fake.on("POST", V2, Reply(status=404, body='{"error": "namespace not found"}'))
    with pytest.raises(DatabaseError) as info:
        await remote.execute("SELECT 1")
    assert info.value.code == "NOT_FOUND"
    assert "namespace not found" in str(info.value)
    assert remote.transport.supports_v3  # nothing learned from a missing database


BATCH_WHERE_EXECUTE = {"type": "ok", "response": {"type": "batch", "result": {}}}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("not json", "malformed pipeline response"),
        (json.dumps({"baton": None, "results": "nope"}), "body.results"),
        (json.dumps(pipeline_ok([CLOSE_OK])), "1 results for 2 requests"),
        (json.dumps(pipeline_ok([BATCH_WHERE_EXECUTE, CLOSE_OK])), "body.results[0]"),
    ],
)
async def test_malformed_responses_are_protocol_errors(
    remote: Database, fake: ScriptedServer, payload: str, problem: str
) -> None:
    fake.on("POST", V3, Reply(body=payload))
    with pytest.raises(DatabaseError) as info:
        await remote.execute("SELECT 1")
    assert info.value.code == "PROTOCOL_ERROR"
    assert problem in str(info.value)


async def test_dropped_connections_and_timeouts(remote: Database, fake: ScriptedServer) -> None:
    fake.on("POST", V3, Reply(drop=True))
    with pytest.raises(DatabaseError) as network:
        await remote.execute("SELECT 1")
    assert network.value.code == "NETWORK_ERROR"
    fake.on("POST", V3, Reply(body=pipeline_ok([EXECUTE_OK, CLOSE_OK]), delay=2.0))
    with pytest.raises(DatabaseError) as timeout:
        await remote.execute("SELECT 1")
    assert timeout.value.code == "TIMEOUT"
    assert "within 0.5 s" in str(timeout.value)


async def test_transaction_follows_batons_and_base_url(
    remote: Database, fake: ScriptedServer
) -> None:
    def answer(request: Recorded) -> Reply:
        body = request.json()
        assert isinstance(body, dict)
        kinds = [r["type"] for r in body["requests"]]
        results = [CLOSE_OK if k == "close" else EMPTY_OK for k in kinds]
        baton = None if "close" in kinds else f"b{len(fake.requests)}"
        base_url = f"{fake.url}/replica/"
        return Reply(body={"baton": baton, "base_url": base_url, "results": results})

    fake.on("POST", V3, answer)
    fake.on("POST", "/replica/v3/pipeline", answer, repeat=True)
    async with remote.transaction() as tx:
        await tx.execute("UPDATE t SET x = 1")
        await tx.execute("UPDATE t SET x = 2")
        await tx.commit()
    seen = [(r.path, r.json()["baton"]) for r in fake.requests]  # type: ignore[index]
    assert seen == [
        (V3, None),
        ("/replica/v3/pipeline", "b1"),
        ("/replica/v3/pipeline", "b2"),
    ]
    final = fake.requests[-1].json()
    assert isinstance(final, dict)
    assert [r["type"] for r in final["requests"]] == ["execute", "close"]
    assert final["requests"][0]["stmt"]["sql"] == "COMMIT"


async def test_one_post_per_execute_and_per_batch_on_a_real_server(server: LocalServer) -> None:
    url = await server.database("counted")
    async with (await open_database(url)).unwrap() as db:
        server.state.counts.reset()
        await db.execute("CREATE TABLE c (x)")
        await db.batch(["INSERT INTO c VALUES (1)", "INSERT INTO c VALUES (2)"])
        assert server.state.counts.count(route="v3/pipeline") == 2
        assert server.state.open_streams == 0  # one-shot pipelines closed their streams


async def test_foreign_keys_hold_without_the_pragma(server: LocalServer) -> None:
    # The server enables them on every connection, as sqld does; nothing is sent for it.
    url = await server.database("keys")
    async with (await open_database(url)).unwrap() as db:
        await db.batch(
            [
                "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
                "CREATE TABLE child (p INTEGER REFERENCES parent(id) ON DELETE CASCADE)",
                "INSERT INTO parent VALUES (1)",
                "INSERT INTO child VALUES (1)",
            ]
        )
        with pytest.raises(DatabaseError) as info:
            await db.execute("INSERT INTO child VALUES (2)")
        assert info.value.code is not None
        assert info.value.code.startswith("SQLITE_CONSTRAINT")
        await db.execute("DELETE FROM parent WHERE id = 1")
        assert (await db.execute("SELECT count(*) FROM child"))[0][0] == 0


async def test_url_with_and_without_trailing_slash(server: LocalServer) -> None:
    url = await server.database("slash")
    for variant in (url, url + "/"):
        async with (await open_database(variant)).unwrap() as db:
            assert (await db.execute("SELECT 1"))[0][0] == 1


async def test_wrong_token_is_unauthorized_at_a_real_server(tmp_path: Path) -> None:
    async def only_good(token: str | None, database: str) -> Access | None:
        return Access.READ_WRITE if token == "good" else None

    app = create_protocol_app(tmp_path / "auth", authorize=only_good)
    await protocol_state(app).create_database("a")
    async with serve(app) as address:
        url = address.database_url("a")
        async with (await open_database(url, "bad-secret-token")).unwrap() as db:
            with pytest.raises(DatabaseError) as info:
                await db.execute("SELECT 1")
        assert info.value.code == "UNAUTHORIZED"
        assert "bad-secret-token" not in str(info.value)
        async with (await open_database(url, "good")).unwrap() as db:
            assert (await db.execute("SELECT 1"))[0][0] == 1
