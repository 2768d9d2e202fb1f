"""Tokens minted by the local Turso's Platform API, used at its SQL endpoint; restarts."""

from __future__ import annotations

import base64
import json
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from per_user_db import open_database
from per_user_db.core._hrana import (
    CloseRequest,
    ExecuteRequest,
    ExecuteResponse,
    Stmt,
    StreamError,
    StreamOk,
    decode_pipeline_response,
    encode_pipeline_request,
)
from per_user_db.dev import (
    Access,
    LocalTurso,
    RegistryCorrupt,
    ServerAddress,
    create_local_turso_app,
    create_protocol_app,
    local_turso,
    protocol_state,
    serve,
)
from per_user_db.dev._registry import REGISTRY_FILE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

TOKEN = "test-api-token"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True, kw_only=True)
class Local:
    address: ServerAddress
    turso: LocalTurso
    session: aiohttp.ClientSession
    clock: FakeClock

    async def platform(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        url = f"{self.address.url}/v1/organizations/local{path}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with self.session.request(method, url, json=body, headers=headers) as response:
            text = await response.read()
            return response.status, json.loads(text) if text else None

    async def create(self, name: str, group: str = "default") -> dict[str, Any]:
        status, body = await self.platform("POST", "/databases", {"name": name, "group": group})
        assert status == 200, body
        database: dict[str, Any] = body["database"]
        return database

    async def token(self, name: str, query: str = "") -> str:
        status, body = await self.platform("POST", f"/databases/{name}/auth/tokens{query}")
        assert status == 200, body
        jwt: str = body["jwt"]
        return jwt

    async def sql(self, name: str, token: str | None, sql: str) -> tuple[int, Any]:
        """HTTP status, and the first result (StreamOk / StreamError) when 200."""
        requests = (ExecuteRequest(stmt=Stmt(sql=sql)), CloseRequest())
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.address.url}/db/{name}/v3/pipeline"
        body = encode_pipeline_request(None, requests)
        async with self.session.post(url, data=body, headers=headers) as response:
            raw = await response.read()
            if response.status != 200:
                return response.status, json.loads(raw)
            return 200, decode_pipeline_response(raw, requests=requests).results[0]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def local(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Local]:
    app = create_local_turso_app(tmp_path, api_token=TOKEN, clock=clock)
    async with serve(app) as address, aiohttp.ClientSession() as session:
        yield Local(address=address, turso=local_turso(app), session=session, clock=clock)


async def test_minted_token_opens_its_database(local: Local) -> None:
    await local.create("alice")
    token = await local.token("alice")
    status, result = await local.sql("alice", token, "create table t (x)")
    assert status == 200
    assert isinstance(result, StreamOk)


async def test_no_or_garbage_token_is_401(local: Local) -> None:
    await local.create("alice")
    for token in (None, "garbage", TOKEN):
        status, body = await local.sql("alice", token, "select 1")
        assert status == 401
        assert "alice" in body["error"]


async def test_token_of_another_database_is_401(local: Local) -> None:
    await local.create("alice")
    await local.create("bob")
    bobs = await local.token("bob")
    assert (await local.sql("alice", bobs, "select 1"))[0] == 401
    assert (await local.sql("bob", bobs, "select 1"))[0] == 200


async def test_token_of_a_deleted_and_recreated_database_is_401(local: Local) -> None:
    await local.create("alice")
    old = await local.token("alice")
    assert (await local.platform("DELETE", "/databases/alice"))[0] == 200
    assert (await local.sql("alice", old, "select 1"))[0] == 401
    await local.create("alice")
    assert (await local.sql("alice", old, "select 1"))[0] == 401


async def test_expired_token_is_401(local: Local) -> None:
    await local.create("alice")
    token = await local.token("alice", "?expiration=1m")
    payload = json.loads(_b64(token.split(".")[1]))
    assert payload["exp"] - payload["iat"] == 60
    assert (await local.sql("alice", token, "select 1"))[0] == 200
    local.clock.now += 59
    assert (await local.sql("alice", token, "select 1"))[0] == 200
    local.clock.now += 1
    assert (await local.sql("alice", token, "select 1"))[0] == 401


async def test_never_expiring_token_keeps_working(local: Local) -> None:
    await local.create("alice")
    token = await local.token("alice", "?expiration=never")
    assert "exp" not in json.loads(_b64(token.split(".")[1]))
    local.clock.now += 100 * 365 * 86_400
    assert (await local.sql("alice", token, "select 1"))[0] == 200


async def test_rotate_invalidates_earlier_tokens_only(local: Local) -> None:
    await local.create("alice")
    await local.create("bob")
    before = await local.token("alice")
    bobs = await local.token("bob")
    assert (await local.platform("POST", "/databases/alice/auth/rotate"))[0] == 200
    assert (await local.sql("alice", before, "select 1"))[0] == 401
    after = await local.token("alice")
    assert (await local.sql("alice", after, "select 1"))[0] == 200
    assert (await local.sql("bob", bobs, "select 1"))[0] == 200


async def test_read_only_token_reads_but_cannot_write(local: Local) -> None:
    await local.create("alice")
    writer = await local.token("alice")
    reader = await local.token("alice", "?authorization=read-only")
    await local.sql("alice", writer, "create table t (x)")
    await local.sql("alice", writer, "insert into t values (1)")
    status, result = await local.sql("alice", reader, "select x from t")
    assert status == 200
    assert isinstance(result, StreamOk)
    status, result = await local.sql("alice", reader, "insert into t values (2)")
    assert status == 200
    assert isinstance(result, StreamError)
    assert "read-only" in result.error.message


async def test_group_token_opens_every_database_of_its_group(local: Local) -> None:
    assert (await local.platform("POST", "/groups", {"name": "eu", "location": "x"}))[0] == 200
    await local.create("alice", group="eu")
    await local.create("bob")
    _, body = await local.platform("POST", "/groups/eu/auth/tokens?authorization=read-only")
    group_token = body["jwt"]
    assert (await local.sql("alice", group_token, "select 1"))[0] == 200
    assert (await local.sql("bob", group_token, "select 1"))[0] == 401
    assert (await local.platform("POST", "/groups/eu/auth/rotate"))[0] == 200
    assert (await local.sql("alice", group_token, "select 1"))[0] == 401


async def test_our_client_reaches_libsql_plus_hostname(local: Local) -> None:
    database = await local.create("alice")
    token = await local.token("alice")
    url = "libsql://" + database["Hostname"]
    assert url == local.turso.database_url("alice", local.address)
    db = (await open_database(url, token)).unwrap()
    try:
        await db.execute("create table t (x)")
        await db.execute("insert into t values (42)")
        result = await db.execute("select x from t")
        assert result.rows[0][0] == 42
    finally:
        await db.close()


async def test_python_api_mirrors_the_http_api(local: Local) -> None:
    turso = local.turso
    record = (await turso.create_database("carol")).unwrap()
    assert turso.get_database("carol").unwrap() == record
    token = turso.mint_database_token("carol", expiration="1d").unwrap()
    assert (await local.sql("carol", token, "select 1"))[0] == 200
    assert (await turso.create_database("carol")).is_err()
    assert turso.mint_database_token("carol", expiration="x").is_err()
    assert (await turso.delete_database("carol")).unwrap() == record


async def test_hostname_follows_public_host(tmp_path: Path) -> None:
    app = create_local_turso_app(tmp_path, api_token=TOKEN, public_host="localhost:9999")
    turso = local_turso(app)
    assert turso.hostname("alice", "127.0.0.1:1") == "localhost:9999/db/alice/?tls=0"


# --- persistence ---------------------------------------------------------------------------


async def test_restart_keeps_databases_data_and_tokens(tmp_path: Path) -> None:
    clock = FakeClock()
    app = create_local_turso_app(tmp_path, api_token=TOKEN, clock=clock)
    async with serve(app) as address, aiohttp.ClientSession() as session:
        first = Local(address=address, turso=local_turso(app), session=session, clock=clock)
        created = await first.create("alice")
        await first.create("bob")
        token = await first.token("alice", "?expiration=1d")
        rotated = await first.token("bob")
        await first.platform("POST", "/databases/bob/auth/rotate")
        await first.sql("alice", token, "create table t (x)")
        await first.sql("alice", token, "insert into t values ('kept')")

    _check_registry_file(tmp_path)

    app = create_local_turso_app(tmp_path, api_token="another-token", clock=clock)
    async with serve(app) as address, aiohttp.ClientSession() as session:
        again = Local(address=address, turso=local_turso(app), session=session, clock=clock)
        headers = {"Authorization": "Bearer another-token"}
        url = f"{address.url}/v1/organizations/local/databases/alice"
        async with session.get(url, headers=headers) as response:
            assert (await response.json())["database"]["DbId"] == created["DbId"]
        status, result = await again.sql("alice", token, "select x from t")
        assert status == 200
        assert isinstance(result, StreamOk)
        assert isinstance(result.response, ExecuteResponse)
        assert list(result.response.result.rows[0]) == ["kept"]
        assert (await again.sql("bob", rotated, "select 1"))[0] == 401


async def test_orphan_files_are_adopted_and_missing_files_dropped(tmp_path: Path) -> None:
    plain = create_protocol_app(tmp_path)
    await protocol_state(plain).create_database("legacy")
    app = create_local_turso_app(tmp_path, api_token=TOKEN)
    turso = local_turso(app)
    assert turso.registry.database("legacy") is not None
    assert turso.registry.database("legacy").group == "default"  # type: ignore[union-attr]
    (tmp_path / "legacy.db").unlink()
    again = local_turso(create_local_turso_app(tmp_path, api_token=TOKEN))
    assert again.registry.database("legacy") is None


def test_corrupt_registry_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / REGISTRY_FILE).write_text("{not json")
    with pytest.raises(RegistryCorrupt, match="move it away"):
        create_local_turso_app(tmp_path)
    (tmp_path / REGISTRY_FILE).write_text(json.dumps({"version": 99}))
    with pytest.raises(RegistryCorrupt, match="version"):
        create_local_turso_app(tmp_path)


def test_access_enum_is_shared_with_the_protocol_server() -> None:
    assert Access.READ_ONLY.value == "ro"


def _check_registry_file(data_dir: Path) -> None:
    # Private (it holds the signing key) and no temporary files left behind.
    assert stat.S_IMODE((data_dir / REGISTRY_FILE).stat().st_mode) == 0o600
    assert not list(data_dir.glob(".*.tmp"))


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
