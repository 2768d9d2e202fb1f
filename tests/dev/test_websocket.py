"""Hrana over WebSocket on the local protocol server, spoken to by real clients.

libsql-client (the client whose protocol this is) and our own ``ws://`` transport talk to
a server on 127.0.0.1; a raw aiohttp WebSocket checks what those clients never send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import libsql_client
import pytest
from libsql_client import LibsqlError

from per_user_db import open_database
from per_user_db.dev import Access, create_protocol_app, protocol_state, serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from per_user_db.dev import ProtocolServerState, ServerAddress


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *databases: str, **options: Any
) -> AsyncIterator[tuple[ServerAddress, ProtocolServerState]]:
    app = create_protocol_app(tmp_path, **options)
    state = protocol_state(app)
    for name in databases:
        await state.create_database(name)
    async with serve(app) as address:
        yield address, state


def ws_url(address: ServerAddress, name: str = "alice", *, slash: bool = True) -> str:
    return f"ws://{address.host}:{address.port}/db/{name}" + ("/" if slash else "")


@contextlib.asynccontextmanager
async def libsql(url: str, auth_token: str | None = None) -> AsyncIterator[Any]:
    client = libsql_client.create_client(url, auth_token=auth_token)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def alice(tmp_path: Path) -> AsyncIterator[tuple[ServerAddress, ProtocolServerState]]:
    async with running(tmp_path, "alice") as server:
        yield server


# --- a raw Hrana client, for what real clients never send ------------------------------------


class Raw:
    """One WebSocket: send messages, read answers (by request id when several are in flight)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next_id = 0
        self._early: dict[int, dict[str, Any]] = {}

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        decoded: dict[str, Any] = json.loads(message.data)
        return decoded

    async def hello(self, jwt: str | None = None) -> dict[str, Any]:
        await self.send({"type": "hello", "jwt": jwt})
        return await self.receive()

    async def submit(self, request: dict[str, Any]) -> int:
        self._next_id += 1
        await self.send({"type": "request", "request_id": self._next_id, "request": request})
        return self._next_id

    async def answer(self, request_id: int) -> dict[str, Any]:
        while request_id not in self._early:
            message = await self.receive()
            self._early[message["request_id"]] = message
        return self._early.pop(request_id)

    async def request(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.answer(await self.submit(request))

    async def execute(self, stream_id: int, sql: str) -> dict[str, Any]:
        stmt = {"sql": sql, "want_rows": True}
        return await self.request({"type": "execute", "stream_id": stream_id, "stmt": stmt})


@contextlib.asynccontextmanager
async def raw(url: str, protocols: tuple[str, ...] = ("hrana2",)) -> AsyncIterator[Raw]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=protocols) as ws,
    ):
        yield Raw(ws)


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["type"] == "response_ok", answer
    response: dict[str, Any] = answer["response"]
    return response


def error_code(answer: dict[str, Any]) -> str:
    assert answer["type"] == "response_error", answer
    code: str = answer["error"]["code"]
    return code


def values(response: dict[str, Any]) -> list[list[object]]:
    return [[v.get("value") for v in row] for row in response["result"]["rows"]]


# --- libsql-client -----------------------------------------------------------------------------


@pytest.mark.parametrize("slash", [True, False])
async def test_libsql_client_executes_with_positional_and_named_args(
    alice: tuple[ServerAddress, ProtocolServerState], slash: bool
) -> None:
    address, state = alice
    async with libsql(ws_url(address, slash=slash)) as client:
        await client.execute("CREATE TABLE t(a INTEGER, b TEXT, c BLOB, d REAL)")
        inserted = await client.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?)", [2**62, "one", b"\0", 1.5]
        )
        assert (inserted.rows_affected, inserted.last_insert_rowid) == (1, 1)
        await client.execute("INSERT INTO t VALUES (:a, :b, NULL, NULL)", {"a": -1, "b": "two"})
        result = await client.execute("SELECT a, b, c, d FROM t ORDER BY a")
    assert result.columns == ("a", "b", "c", "d")
    assert [tuple(row) for row in result.rows] == [
        (-1, "two", None, None),
        (2**62, "one", b"\0", 1.5),
    ]
    assert state.counts.count(route="ws", database="alice") >= 1


async def test_libsql_client_batch_commits_all_or_nothing(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with libsql(ws_url(address)) as client:
        _, inserted, counted = await client.batch(
            [
                "CREATE TABLE t(a INTEGER PRIMARY KEY)",
                libsql_client.Statement("INSERT INTO t VALUES (?)", [1]),
                "SELECT count(*) FROM t",
            ]
        )
        assert inserted.rows_affected == 1
        assert counted.rows[0][0] == 1
        with pytest.raises(LibsqlError) as failed:
            await client.batch(["INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (1)"])
        assert failed.value.code == "SQLITE_CONSTRAINT"  # sqld's: the primary code
        assert "UNIQUE constraint failed" in str(failed.value)
        after = await client.execute("SELECT a FROM t")
    assert [tuple(row) for row in after.rows] == [(1,)]


async def test_libsql_client_transaction_commits_and_rolls_back(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with libsql(ws_url(address)) as client:
        await client.execute("CREATE TABLE t(a)")
        tx = client.transaction()
        await tx.execute("INSERT INTO t VALUES (1)")
        assert (await tx.execute("SELECT count(*) FROM t")).rows[0][0] == 1
        await tx.commit()
        tx = client.transaction()
        await tx.execute("INSERT INTO t VALUES (2)")
        await tx.rollback()
        after = await client.execute("SELECT a FROM t")
    assert [tuple(row) for row in after.rows] == [(1,)]


async def test_libsql_client_sequence_and_connection_wide_stored_sql(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    """libsql-client exposes these only on its connection object; they still work."""
    address, _ = alice
    async with libsql(ws_url(address)) as client:
        conn = client._conn
        with conn.open_stream() as stream:
            await stream.sequence(
                "CREATE TABLE t(a); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);"
            )
        sql_id = conn.store_sql("SELECT sum(a) FROM t")
        # Stored SQL belongs to the connection: a stream opened later may use it too.
        with conn.open_stream() as stream:
            result = await stream.execute({"sql_id": sql_id, "want_rows": True})
            await stream.sequence(sql_id)
        conn.close_sql(sql_id)
        assert result["rows"] == [[{"type": "integer", "value": "3"}]]
        with conn.open_stream() as stream, pytest.raises(LibsqlError) as missing:
            await stream.execute({"sql_id": sql_id, "want_rows": True})
    assert missing.value.code == "SQL_NOT_FOUND"


async def test_sql_error_is_a_libsql_error_and_the_connection_goes_on(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with libsql(ws_url(address)) as client:
        with pytest.raises(LibsqlError) as parse:
            await client.execute("SELEC 1")
        assert parse.value.code == "SQL_PARSE_ERROR"
        with pytest.raises(LibsqlError) as missing:
            await client.execute("SELECT * FROM nowhere")
        assert "no such table" in str(missing.value)
        assert (await client.execute("SELECT 41 + 1")).rows[0][0] == 42


async def test_rejected_token_fails_at_connect(tmp_path: Path) -> None:
    seen: list[tuple[str | None, str]] = []

    async def only_good(token: str | None, database: str) -> Access | None:
        seen.append((token, database))
        return Access.READ_WRITE if token == "good" else None

    async with running(tmp_path, "alice", authorize=only_good) as (address, _):
        async with libsql(ws_url(address), auth_token="bad") as client:
            with pytest.raises(LibsqlError) as refused:
                await client.execute("SELECT 1")
        async with libsql(ws_url(address), auth_token="good") as client:
            assert (await client.execute("SELECT 1")).rows[0][0] == 1
    assert refused.value.code == "UNAUTHORIZED"
    assert "bad" not in str(refused.value)
    assert seen == [("bad", "alice"), ("good", "alice")]


async def test_read_only_token_cannot_write(tmp_path: Path) -> None:
    async def read_only(token: str | None, database: str) -> Access | None:
        return Access.READ_ONLY if token == "reader" else Access.READ_WRITE

    async with running(tmp_path, "alice", authorize=read_only) as (address, _):
        async with libsql(ws_url(address)) as writer:
            await writer.execute("CREATE TABLE t(a)")
        async with libsql(ws_url(address), auth_token="reader") as reader:
            assert (await reader.execute("SELECT count(*) FROM t")).rows[0][0] == 0
            with pytest.raises(LibsqlError) as rejected:
                await reader.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(LibsqlError) as in_batch:
                await reader.batch(["INSERT INTO t VALUES (1)"])
    assert rejected.value.code.startswith("SQLITE_READONLY")
    assert "read-only access" in str(rejected.value)
    assert "read-only access" in str(in_batch.value)


async def test_missing_database_is_refused_unless_created_on_demand(tmp_path: Path) -> None:
    async with running(tmp_path / "strict") as (address, _):
        async with libsql(ws_url(address, "nobody")) as client:
            with pytest.raises(LibsqlError) as missing:
                await client.execute("SELECT 1")
        assert missing.value.code == "NOT_FOUND"
        async with libsql(ws_url(address, "Not_A_Name")) as client:
            with pytest.raises(LibsqlError) as invalid:
                await client.execute("SELECT 1")
        assert invalid.value.code == "NOT_FOUND"
    async with running(tmp_path / "lenient", create_on_demand=True) as (address, state):
        async with libsql(ws_url(address, "newcomer")) as client:
            await client.execute("CREATE TABLE t(a)")
        assert state.database_exists("newcomer")


# --- our own client --------------------------------------------------------------------------


async def test_our_client_over_ws(alice: tuple[ServerAddress, ProtocolServerState]) -> None:
    address, _ = alice
    db = (await open_database(ws_url(address, slash=False))).unwrap()
    try:
        await db.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY)")
        await db.execute("CREATE TABLE child(p INTEGER REFERENCES parent(id))")
        await db.execute("INSERT INTO parent VALUES (?)", [1])
        named = await db.execute("SELECT id FROM parent WHERE id = :id", {"id": 1})
        assert [tuple(row) for row in named.rows] == [(1,)]
        # Our client turns foreign keys on for every stream it opens.
        with pytest.raises(LibsqlError) as orphan:
            await db.execute("INSERT INTO child VALUES (99)")
        assert orphan.value.code == "SQLITE_CONSTRAINT"
        assert "FOREIGN KEY constraint failed" in str(orphan.value)

        results = await db.batch(["INSERT INTO parent VALUES (2)", "SELECT count(*) FROM parent"])
        assert results[1].rows[0][0] == 2
        with pytest.raises(LibsqlError):
            await db.batch(["INSERT INTO parent VALUES (3)", "INSERT INTO child VALUES (99)"])
        assert (await db.execute("SELECT count(*) FROM parent")).rows[0][0] == 2

        async with db.transaction() as tx:
            await tx.execute("INSERT INTO parent VALUES (4)")
            await tx.commit()
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO parent VALUES (5)")
            # leaving without commit rolls back
        ids = await db.execute("SELECT id FROM parent ORDER BY id")
        assert [row[0] for row in ids.rows] == [1, 2, 4]
    finally:
        await db.close()


# --- the protocol itself ---------------------------------------------------------------------


async def test_request_before_hello_closes_the_socket(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with raw(ws_url(address)) as client:
        await client.submit({"type": "open_stream", "stream_id": 0})
        closed = await client.ws.receive(timeout=10)
    assert closed.type is aiohttp.WSMsgType.CLOSE
    assert closed.data == aiohttp.WSCloseCode.PROTOCOL_ERROR
    assert "hello" in str(closed.extra)


async def test_bad_requests_get_error_responses_and_the_socket_lives(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with raw(ws_url(address)) as client:
        assert await client.hello() == {"type": "hello_ok"}
        assert client.ws.protocol == "hrana2"
        assert error_code(await client.execute(7, "SELECT 1")) == "STREAM_NOT_FOUND"
        assert ok(await client.request({"type": "open_stream", "stream_id": 7})) == {
            "type": "open_stream"
        }
        again = await client.request({"type": "open_stream", "stream_id": 7})
        assert error_code(again) == "STREAM_EXISTS"
        malformed = await client.request({"type": "execute", "stream_id": 7, "stmt": {"args": []}})
        assert error_code(malformed) == "PROTOCOL_ERROR"
        assert "request.stmt" in malformed["error"]["message"]
        unknown = await client.request({"type": "get_autocommit", "stream_id": 7})
        assert error_code(unknown) == "PROTOCOL_ERROR"
        # SQLite holds infinity; Hrana JSON cannot carry it.
        assert error_code(await client.execute(7, "SELECT 1e999")) == "VALUE_NOT_REPRESENTABLE"
        assert values(ok(await client.execute(7, "SELECT 1"))) == [["1"]]
        assert ok(await client.request({"type": "close_stream", "stream_id": 7})) == {
            "type": "close_stream"
        }
        assert error_code(await client.execute(7, "SELECT 1")) == "STREAM_NOT_FOUND"


async def test_describe_and_stored_sql(alice: tuple[ServerAddress, ProtocolServerState]) -> None:
    address, _ = alice
    async with raw(ws_url(address)) as client:
        await client.hello()
        ok(await client.request({"type": "open_stream", "stream_id": 1}))
        ok(await client.request({"type": "store_sql", "sql_id": 5, "sql": "SELECT :x AS x"}))
        duplicate = await client.request({"type": "store_sql", "sql_id": 5, "sql": "SELECT 2"})
        assert error_code(duplicate) == "SQL_EXISTS"
        described = ok(await client.request({"type": "describe", "stream_id": 1, "sql_id": 5}))
        assert described["type"] == "describe"
        assert described["result"]["params"] == [{"name": ":x"}]
        assert described["result"]["is_readonly"] is True
        ok(await client.request({"type": "close_sql", "sql_id": 5}))
        gone = await client.request({"type": "describe", "stream_id": 1, "sql_id": 5})
        assert error_code(gone) == "SQL_NOT_FOUND"


async def test_hrana1_has_no_hrana2_requests(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with raw(ws_url(address), protocols=("hrana1",)) as client:
        assert await client.hello() == {"type": "hello_ok"}
        assert client.ws.protocol == "hrana1"
        refused = await client.request({"type": "store_sql", "sql_id": 1, "sql": "SELECT 1"})
        assert "hrana2" in refused["error"]["message"]
        ok(await client.request({"type": "open_stream", "stream_id": 0}))
        assert values(ok(await client.execute(0, "SELECT 'still fine'"))) == [["still fine"]]


async def test_streams_run_concurrently(tmp_path: Path) -> None:
    """Stream 2 waits for stream 1's write lock; stream 1 must still be able to COMMIT.

    Were the streams served one after the other, the COMMIT would queue behind the blocked
    INSERT and the INSERT would fail with SQLITE_BUSY after the busy timeout.
    """
    async with (
        running(tmp_path, "alice", busy_timeout=3.0) as (address, _),
        raw(ws_url(address)) as client,
    ):
        await client.hello()
        for stream_id in (1, 2):
            ok(await client.request({"type": "open_stream", "stream_id": stream_id}))
        ok(await client.execute(1, "CREATE TABLE t(a)"))
        ok(await client.execute(1, "BEGIN IMMEDIATE"))
        ok(await client.execute(1, "INSERT INTO t VALUES (1)"))
        stmt = {"sql": "INSERT INTO t VALUES (2)", "want_rows": False}
        blocked = await client.submit({"type": "execute", "stream_id": 2, "stmt": stmt})
        commit_stmt = {"sql": "COMMIT", "want_rows": False}
        commit = await client.submit({"type": "execute", "stream_id": 1, "stmt": commit_stmt})
        first = await client.receive()
        assert first["request_id"] == commit, first
        ok(first)
        ok(await client.answer(blocked))
        assert values(ok(await client.execute(1, "SELECT count(*) FROM t"))) == [["2"]]


async def test_requests_on_one_stream_run_in_order(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with raw(ws_url(address)) as client:
        await client.hello()
        open_id = await client.submit({"type": "open_stream", "stream_id": 0})
        ids = [
            await client.submit(
                {"type": "execute", "stream_id": 0, "stmt": {"sql": sql, "want_rows": True}}
            )
            for sql in (
                "CREATE TABLE t(a)",
                *(f"INSERT INTO t VALUES ({i})" for i in range(20)),
                "SELECT group_concat(a) FROM t",
            )
        ]
        close_id = await client.submit({"type": "close_stream", "stream_id": 0})
        ok(await client.answer(open_id))
        answers = [ok(await client.answer(i)) for i in ids]
        ok(await client.answer(close_id))
    assert values(answers[-1]) == [[",".join(str(i) for i in range(20))]]


async def test_closing_the_socket_rolls_back_open_transactions(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with raw(ws_url(address)) as client:
        await client.hello()
        ok(await client.request({"type": "open_stream", "stream_id": 0}))
        ok(await client.execute(0, "CREATE TABLE t(a)"))
        ok(await client.execute(0, "BEGIN"))
        ok(await client.execute(0, "INSERT INTO t VALUES (1)"))
    async with libsql(ws_url(address)) as later:
        # Would fail with SQLITE_BUSY if the first socket's transaction were still open.
        await later.execute("INSERT INTO t VALUES (2)")
        assert [tuple(r) for r in (await later.execute("SELECT a FROM t")).rows] == [(2,)]


async def test_a_plain_get_or_a_foreign_subprotocol_is_refused(
    alice: tuple[ServerAddress, ProtocolServerState],
) -> None:
    address, _ = alice
    async with aiohttp.ClientSession() as session:
        async with session.get(address.database_url("alice")) as response:
            assert response.status == 400
            assert "WebSocket" in (await response.json())["error"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url(address), protocols=("hrana9",))
        assert refused.value.status == 400


async def test_server_shutdown_closes_open_sockets(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as clients:
        async with running(tmp_path, "alice") as (address, _):
            client = await clients.enter_async_context(raw(ws_url(address)))
            await client.hello()
            ok(await client.request({"type": "open_stream", "stream_id": 0}))
            ok(await client.execute(0, "BEGIN"))
            library = await clients.enter_async_context(libsql(ws_url(address)))
            tx = library.transaction()
            await tx.execute("SELECT 1")
        closed = await client.ws.receive(timeout=10)
        assert closed.type is aiohttp.WSMsgType.CLOSE
        assert closed.data == aiohttp.WSCloseCode.GOING_AWAY
        with pytest.raises(LibsqlError):
            await asyncio.wait_for(tx.execute("SELECT 1"), 10)


async def test_an_abandoned_transaction_does_not_block_other_writers(tmp_path: Path) -> None:
    async with (
        running(tmp_path, "alice", transaction_timeout=0.3, stream_idle_timeout=30) as server,
        raw(ws_url(server[0])) as client,
    ):
        address, _ = server
        await client.hello()
        ok(await client.request({"type": "open_stream", "stream_id": 0}))
        ok(await client.execute(0, "CREATE TABLE t(a)"))
        ok(await client.execute(0, "BEGIN IMMEDIATE"))
        ok(await client.execute(0, "INSERT INTO t VALUES (1)"))
        # The socket stays open and the client goes quiet, holding the write lock.
        async with libsql(ws_url(address)) as other:
            await other.execute("INSERT INTO t VALUES (2)")  # not blocked for long
        assert error_code(await client.execute(0, "COMMIT")) == "TRANSACTION_TIMEOUT"
        ok(await client.execute(0, "SELECT 1"))  # the stream goes on, in autocommit
        assert values(ok(await client.execute(0, "SELECT a FROM t"))) == [["2"]]


async def test_an_idle_stream_expires(tmp_path: Path) -> None:
    async with (
        running(tmp_path, "alice", stream_idle_timeout=0.3) as server,
        raw(ws_url(server[0])) as client,
    ):
        await client.hello()
        ok(await client.request({"type": "open_stream", "stream_id": 0}))
        ok(await client.execute(0, "SELECT 1"))
        await asyncio.sleep(0.8)
        assert error_code(await client.execute(0, "SELECT 1")) == "STREAM_EXPIRED"
        ok(await client.request({"type": "open_stream", "stream_id": 1}))  # a new one works
        ok(await client.execute(1, "SELECT 1"))
