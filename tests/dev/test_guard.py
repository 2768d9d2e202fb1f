"""Attacks on the local Turso's SQL side: a token reaches its own database and nothing else.

Each attack was tried against the server before the guard and worked; each must now be a
clean in-band refusal, with nothing read across databases and no file written outside
the data folder. Real server on 127.0.0.1, real tokens, real files.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aiohttp
import pytest

from per_user_db.core._hrana import (
    CloseRequest,
    ExecuteRequest,
    Stmt,
    encode_pipeline_request,
)
from per_user_db.dev import Access, create_protocol_app, protocol_state, serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from per_user_db.dev import ServerAddress

TOKENS = {"alice": ("alice", Access.READ_WRITE), "alice-ro": ("alice", Access.READ_ONLY)}


def ex(sql: str) -> ExecuteRequest:
    return ExecuteRequest(stmt=Stmt(sql=sql))


class Client:
    def __init__(self, address: ServerAddress, session: aiohttp.ClientSession) -> None:
        self.address = address
        self.session = session

    async def run(self, token: str, *sql: str) -> list[dict[str, object]]:
        body = encode_pipeline_request(None, [*(ex(s) for s in sql), CloseRequest()])
        url = self.address.database_url("alice") + "v3/pipeline"
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.post(url, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            results = json.loads(await response.read())["results"]
        assert isinstance(results, list)
        return results[: len(sql)]


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def client(data: Path) -> AsyncIterator[Client]:
    async def authorize(token: str | None, database: str) -> Access | None:
        owner, access = TOKENS.get(token or "", (None, None))
        return access if owner == database else None

    app = create_protocol_app(data, authorize=authorize)
    state = protocol_state(app)
    await state.create_database("alice")
    await state.create_database("bob")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        yield Client(address, session)


def refused(result: dict[str, object]) -> str:
    assert result["type"] == "error", result
    error = result["error"]
    assert isinstance(error, dict)
    return str(error.get("code"))


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def test_alice_cannot_attach_bobs_database(client: Client, data: Path) -> None:
    bob = data / "bob.db"
    before = bob.read_bytes()
    results = await client.run(
        "alice",
        f"ATTACH '{bob}' AS o",
        "SELECT * FROM o.sqlite_master",
        f"ATTACH 'file:{bob}?mode=ro' AS o2",
    )
    assert refused(results[0]) == "SQLITE_AUTH"
    assert refused(results[1]) != "None"  # no schema o: nothing read across databases
    assert refused(results[2]) == "SQLITE_AUTH"
    assert bob.read_bytes() == before


async def test_no_file_is_created_anywhere(client: Client, data: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = files(data)
    results = await client.run(
        "alice",
        f"ATTACH '{outside / 'new.db'}' AS n",
        f"VACUUM INTO '{outside / 'copy.db'}'",
        f"VACUUM INTO '{data / 'copy.db'}'",
    )
    assert [refused(r) for r in results] == ["SQLITE_AUTH"] * 3
    assert list(outside.iterdir()) == []
    assert files(data) <= inside | {"alice.db-wal", "alice.db-shm"}


async def test_a_read_only_token_reads_the_schema_and_nothing_more(client: Client) -> None:
    await client.run("alice", "CREATE TABLE t (x)")
    results = await client.run(
        "alice-ro", "PRAGMA table_info(t)", "PRAGMA foreign_keys = OFF", "PRAGMA user_version"
    )
    assert results[0]["type"] == "ok"
    assert refused(results[1]) == "SQLITE_AUTH"  # as in sqld: write permission needed
    assert refused(results[2]) == "SQLITE_AUTH"


async def test_a_read_only_token_cannot_unlock_writes(client: Client, data: Path) -> None:
    await client.run("alice", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    results = await client.run(
        "alice-ro",
        "PRAGMA query_only = OFF",
        "INSERT INTO t VALUES (2)",
        f"VACUUM INTO '{data / 'ro-copy.db'}'",
        "SELECT count(*) FROM t",
    )
    assert refused(results[0]) == "SQLITE_AUTH"
    assert refused(results[1]) == "SQLITE_READONLY"
    assert refused(results[2]) == "SQLITE_AUTH"
    assert not (data / "ro-copy.db").exists()
    ok = results[3]
    assert ok["type"] == "ok"
    (count,) = await client.run("alice", "SELECT count(*) FROM t")
    assert json.dumps(count).count('"value": "1"') == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT fts3_tokenizer('simple')",  # a memory pointer
        "SELECT load_extension('/tmp/evil')",
        "PRAGMA database_list",  # the server's absolute path
        "SELECT file FROM pragma_database_list",
        "PRAGMA writable_schema = ON",  # a way to corrupt the file
        "PRAGMA journal_mode = DELETE",
        "PRAGMA temp_store_directory = '/tmp'",
    ],
)
async def test_leaks_and_foot_guns_are_refused(client: Client, sql: str) -> None:
    (result,) = await client.run("alice", sql)
    refused(result)
    # Pragmas fail with SQLITE_AUTH, functions while compiling with SQL_INPUT_ERROR (as
    # sqld names an SQLITE_ERROR at a token): both say why.
    assert "not authorized" in json.dumps(result)
    assert "/" not in json.dumps(result).replace("\\/", "")  # no path in the answer


async def test_what_clients_and_migrators_need_still_works(client: Client) -> None:
    results = await client.run(
        "alice",
        "CREATE TABLE p (id INTEGER PRIMARY KEY)",
        "CREATE TABLE c (p INTEGER REFERENCES p(id))",
        "PRAGMA foreign_keys = OFF",  # a drizzle table rebuild
        "SELECT foreign_keys FROM pragma_foreign_keys",
        "PRAGMA foreign_keys = ON",
        "PRAGMA table_info(c)",
        "SELECT * FROM pragma_foreign_key_check",
        "PRAGMA user_version = 7",
        "PRAGMA user_version",
        "PRAGMA integrity_check",
        "PRAGMA journal_mode",  # a setting may be read, not changed
        "SELECT * FROM pragma_table_info('p')",
    )
    assert [r["type"] for r in results] == ["ok"] * len(results)
    # And the refusals leave the stream usable: the next statement of the pipeline runs.
    denied, after = await client.run("alice", "PRAGMA database_list", "SELECT 1")
    assert denied["type"] == "error"
    assert after["type"] == "ok"


def test_the_guard_is_what_refuses() -> None:
    # Unit-level: the decisions themselves, so a refactor cannot drop one unnoticed.
    import apsw

    from per_user_db.dev._guard import guard_connection

    conn = apsw.Connection(":memory:")
    guard_connection(read_only=False)(conn)
    for sql in ("ATTACH ':memory:' AS x", "PRAGMA writable_schema = ON"):
        with pytest.raises(apsw.AuthError, match="not authorized"):
            conn.execute(sql)
    assert conn.execute("PRAGMA foreign_keys").fetchone() is not None
    conn.close()
