"""The local Turso bounds what it accepts: time, nesting, and how it starts and stops.

Real servers on 127.0.0.1 (in process, or ``python -m per_user_db.dev`` in a child
process for signals and start-up), real files.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import aiohttp

from per_user_db.core._hrana import (
    Batch,
    BatchRequest,
    BatchStep,
    CloseRequest,
    DescribeRequest,
    ExecuteRequest,
    Stmt,
    StoreSqlRequest,
    decode_pipeline_response,
    encode_pipeline_request,
)
from per_user_db.dev import (
    create_local_turso_app,
    create_protocol_app,
    local_turso,
    protocol_state,
    serve,
)

if TYPE_CHECKING:
    from pathlib import Path

    from per_user_db.core._hrana import StreamRequest

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def body(*sql: str) -> bytes:
    return encode_pipeline_request(
        None, [*(ExecuteRequest(stmt=Stmt(sql=s)) for s in sql), CloseRequest()]
    )


async def test_a_runaway_query_is_interrupted_at_the_time_limit(tmp_path: Path) -> None:
    app = create_protocol_app(tmp_path, statement_timeout=0.3)
    await protocol_state(app).create_database("db")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        url = address.database_url("db") + "v3/pipeline"
        bounded = aiohttp.ClientTimeout(total=20)  # fail, not hang, if nothing interrupts it
        async with session.post(url, data=body(RUNAWAY), timeout=bounded) as response:
            assert response.status == 200
            (result, _) = decode_pipeline_response(await response.read()).results
        assert json.dumps(str(result)).count("SQLITE_INTERRUPT") == 1
        async with session.post(url, data=body("SELECT 1")) as response:  # still serving
            assert response.status == 200


async def test_a_client_that_gives_up_frees_the_server(tmp_path: Path) -> None:
    app = create_protocol_app(tmp_path, statement_timeout=None)  # only the disconnect stops it
    state = protocol_state(app)
    await state.create_database("db")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        url = address.database_url("db") + "v3/pipeline"
        try:
            async with session.post(
                url, data=body(RUNAWAY), timeout=aiohttp.ClientTimeout(total=0.3)
            ):
                pass
        except TimeoutError:
            pass
        else:
            raise AssertionError("the runaway query answered")
        # Its stream closes once the interrupted statement returns: the thread is free.
        for _ in range(100):
            if state.open_streams == 0:
                break
            await asyncio.sleep(0.05)
        assert state.open_streams == 0


async def test_deeply_nested_json_is_a_clear_400(tmp_path: Path) -> None:
    nested = b'{"baton": null, "requests": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    condition: dict[str, object] = {"type": "ok", "step": 0}
    for _ in range(40):
        condition = {"type": "not", "cond": condition}
    steps = [{"stmt": {"sql": "SELECT 1"}}, {"stmt": {"sql": "SELECT 2"}, "condition": condition}]
    deep_condition = json.dumps(
        {"baton": None, "requests": [{"type": "batch", "batch": {"steps": steps}}]}
    ).encode()
    sql_side = create_protocol_app(tmp_path / "sql")
    await protocol_state(sql_side).create_database("db")
    async with serve(sql_side) as address, aiohttp.ClientSession() as session:
        url = address.database_url("db") + "v3/pipeline"
        for payload, words in ((nested, "nested too deeply"), (deep_condition, "nest deeper")):
            async with session.post(url, data=payload) as response:
                assert response.status == 400
                assert words in await response.text()
    platform = create_local_turso_app(tmp_path / "turso")
    turso = local_turso(platform)
    async with (
        serve(platform) as address,
        aiohttp.ClientSession() as session,
        session.post(
            f"{address.url}/v1/organizations/{turso.org}/databases",
            data=b"[" * 5000 + b"]" * 5000,
            headers={"Authorization": f"Bearer {turso.api_token}"},
        ) as response,
    ):
        assert response.status == 400
        assert "nested too deeply" in await response.text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "per_user_db.dev", "--data-dir", str(tmp_path / "data"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_sigint_stops_the_server_during_a_runaway_query(tmp_path: Path) -> None:
    port = free_port()
    child = start(tmp_path, "--protocol-only", "--create-on-demand", "--port", str(port))
    try:
        assert child.stdout is not None
        assert "serving" in child.stdout.readline()
        url = f"http://127.0.0.1:{port}/db/main/v3/pipeline"
        async with aiohttp.ClientSession() as session:
            async with session.post(
                url, data=body("CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
            ):
                pass
            runaway = asyncio.ensure_future(session.post(url, data=body(RUNAWAY)))
            await asyncio.sleep(0.5)  # the query is running on the server now
            child.send_signal(signal.SIGINT)
            await asyncio.to_thread(child.communicate, timeout=10)
            runaway.cancel()
        assert child.returncode == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    with sqlite3.connect(tmp_path / "data" / "main.db") as conn:  # intact after the stop
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_start_up_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        child = start(tmp_path, "--port", port)
        _, err = child.communicate(timeout=30)
    assert child.returncode == 2
    assert err.strip().count("\n") == 0
    assert "cannot start" in err
    for args, words in (
        (("--port", "99999"), "between 0 and 65535"),
        (("--host", "0.0.0.0"), "--allow-remote"),
    ):
        child = start(tmp_path, *args)
        _, err = child.communicate(timeout=30)
        assert child.returncode == 2
        assert words in err
        assert "Traceback" not in err


async def test_a_transaction_held_too_long_is_rolled_back_and_the_next_request_told(
    tmp_path: Path,
) -> None:
    app = create_protocol_app(tmp_path, transaction_timeout=0.3, stream_idle_timeout=30)
    await protocol_state(app).create_database("db")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        url = address.database_url("db") + "v3/pipeline"

        async def send(baton: str | None, *sql: str, close: bool = False) -> Any:
            requests = [ExecuteRequest(stmt=Stmt(sql=s)) for s in sql]
            payload = encode_pipeline_request(baton, [*requests, *([CloseRequest()] * close)])
            async with session.post(url, data=payload) as response:
                assert response.status == 200
                answer = json.loads(await response.read())
            assert isinstance(answer, dict)
            return answer

        await send(None, "CREATE TABLE t (x)", close=True)
        held = await send(None, "BEGIN IMMEDIATE", "INSERT INTO t VALUES (1)")
        await asyncio.sleep(1.0)  # the client thinks; the server gives up on it
        # Another writer is not blocked by the abandoned transaction.
        other = await send(None, "INSERT INTO t VALUES (2)", close=True)
        assert [r["type"] for r in other["results"]] == ["ok", "ok"]
        told = await send(str(held["baton"]), "COMMIT", close=True)
        (result, _) = told["results"]
        assert result["type"] == "error"
        assert result["error"]["code"] == "TRANSACTION_TIMEOUT"
        after = await send(None, "SELECT x FROM t ORDER BY x", close=True)
        rows = after["results"][0]["response"]["result"]["rows"]
        assert rows == [[{"type": "integer", "value": "2"}]]  # the held insert was undone


async def test_after_a_transaction_timeout_only_the_next_program_fails(
    tmp_path: Path,
) -> None:
    # As sqld (connection_core.rs, forced_rollback): the next execute, batch or sequence
    # fails (a batch in every step); stored SQL, describe and what follows run.
    app = create_protocol_app(tmp_path, transaction_timeout=0.3, stream_idle_timeout=30)
    await protocol_state(app).create_database("db")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        url = address.database_url("db") + "v3/pipeline"

        async def send(baton: str | None, *requests: StreamRequest) -> Any:
            payload = encode_pipeline_request(baton, list(requests))
            async with session.post(url, data=payload) as response:
                assert response.status == 200
                return json.loads(await response.read())

        held = await send(None, ExecuteRequest(stmt=Stmt(sql="BEGIN IMMEDIATE")))
        await asyncio.sleep(1.0)
        described = await send(held["baton"], DescribeRequest(sql="SELECT 1"))
        assert described["results"][0]["type"] == "ok"  # no program: nothing consumed
        batch = Batch(steps=(BatchStep(stmt=Stmt(sql_id=1)), BatchStep(stmt=Stmt(sql="SELECT 2"))))
        told = await send(
            described["baton"],
            StoreSqlRequest(sql_id=1, sql="SELECT 1"),
            BatchRequest(batch=batch),
            ExecuteRequest(stmt=Stmt(sql="SELECT 3")),
            CloseRequest(),
        )
        stored, failed, after, _ = told["results"]
        assert stored["type"] == "ok"
        step_errors = failed["response"]["result"]["step_errors"]
        assert [e["code"] for e in step_errors] == ["TRANSACTION_TIMEOUT"] * 2
        assert "0.3 s" in step_errors[0]["message"]  # the limit this server has
        assert after["response"]["result"]["rows"] == [[{"type": "integer", "value": "3"}]]


async def test_db_file_serves_one_database_at_the_root(tmp_path: Path) -> None:
    import libsql_client

    from per_user_db import open_database

    port = free_port()
    file = tmp_path / "My App.sqlite"  # any file name, not only a database name
    child = start(tmp_path, "--db", str(file), "--port", str(port))
    try:
        assert child.stdout is not None
        assert f"http://127.0.0.1:{port}/" in child.stdout.readline()
        root = f"http://127.0.0.1:{port}"
        async with (await open_database(root)).unwrap() as db:  # HTTP pipeline at /
            await db.execute("CREATE TABLE t (x)")
            await db.batch(["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"])
        over_ws = libsql_client.create_client(f"ws://127.0.0.1:{port}")  # WebSocket at /
        async with over_ws:
            rows = await over_ws.execute("SELECT sum(x) FROM t")
            assert rows[0][0] == 3
        async with (  # no Platform API in this mode
            aiohttp.ClientSession() as session,
            session.get(f"{root}/v1/organizations/local/databases") as response,
        ):
            assert response.status == 404
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=10)
    with sqlite3.connect(file) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
