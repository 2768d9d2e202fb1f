"""The local Turso's Platform API over real HTTP on 127.0.0.1: routes, errors, faults."""

from __future__ import annotations

import asyncio
import email.utils
import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from per_user_db.dev import (
    LocalTurso,
    ServerAddress,
    create_local_turso_app,
    local_turso,
    serve,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

TOKEN = "test-api-token"
ORG = "acme"


@dataclass(frozen=True, slots=True, kw_only=True)
class Api:
    address: ServerAddress
    turso: LocalTurso
    session: aiohttp.ClientSession

    @property
    def org_url(self) -> str:
        return f"{self.address.url}/v1/organizations/{ORG}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        token: str | None = TOKEN,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """Status and decoded JSON body (None when empty) of one request."""
        url = path if path.startswith("http") else self.org_url + path
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        async with self.session.request(method, url, data=data, headers=headers) as response:
            text = await response.read()
            return response.status, json.loads(text) if text else None

    async def create(self, name: str, group: str = "default") -> tuple[int, Any]:
        return await self.call("POST", "/databases", body={"name": name, "group": group})


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    app = create_local_turso_app(tmp_path, org=ORG, api_token=TOKEN, max_databases=5)
    async with serve(app) as address, aiohttp.ClientSession() as session:
        yield Api(address=address, turso=local_turso(app), session=session)


# --- auth and organization -----------------------------------------------------------------


async def test_validate_returns_never_expiring(api: Api) -> None:
    assert await api.call("GET", f"{api.address.url}/v1/auth/validate") == (200, {"exp": -1})


@pytest.mark.parametrize("token", [None, "wrong", f"{TOKEN}x"])
@pytest.mark.parametrize(
    "path", ["/v1/auth/validate", f"/v1/organizations/{ORG}/databases", "/v1/nothing-here"]
)
async def test_every_platform_route_needs_the_api_token(
    api: Api, token: str | None, path: str
) -> None:
    status, body = await api.call("GET", api.address.url + path, token=token)
    assert status == 401
    assert "Authorization: Bearer" in body["error"]
    assert TOKEN not in body["error"]


async def test_basic_scheme_is_refused(api: Api) -> None:
    headers = {"Authorization": f"Basic {TOKEN}"}
    async with api.session.get(f"{api.org_url}/databases", headers=headers) as response:
        assert response.status == 401


async def test_wrong_organization_is_404(api: Api) -> None:
    url = f"{api.address.url}/v1/organizations/someone-else/databases"
    assert await api.call("GET", url) == (404, {"error": "organization not found"})
    assert await api.call("POST", url, body={"name": "x", "group": "default"}) == (
        404,
        {"error": "organization not found"},
    )


async def test_organization_routes(api: Api) -> None:
    status, orgs = await api.call("GET", f"{api.address.url}/v1/organizations")
    assert status == 200
    assert [o["slug"] for o in orgs] == [ORG]
    status, body = await api.call("GET", "")
    assert status == 200
    assert body["organization"]["slug"] == ORG


async def test_unknown_route_with_token_is_404_json(api: Api) -> None:
    status, body = await api.call("GET", "/nothing")
    assert status == 404
    assert "error" in body


# --- databases -------------------------------------------------------------------------------


async def test_create_get_list_delete(api: Api) -> None:
    status, created = await api.create("alice")
    assert status == 200
    database = created["database"]
    assert set(database) == {"DbId", "Hostname", "Name"}
    assert database["Name"] == "alice"
    port = api.address.port
    assert database["Hostname"] == f"127.0.0.1:{port}/db/alice/?tls=0"

    status, got = await api.call("GET", "/databases/alice")
    assert status == 200
    db = got["database"]
    assert db["Name"] == "alice"
    assert db["DbId"] == database["DbId"]
    assert db["Hostname"] == database["Hostname"]
    assert db["group"] == "default"
    assert db["primaryRegion"] == "local"
    assert db["block_reads"] is False
    assert db["block_writes"] is False
    assert db["delete_protection"] is False
    assert db["parent"] is None

    status, listed = await api.call("GET", "/databases")
    assert status == 200
    assert [d["Name"] for d in listed["databases"]] == ["alice"]
    assert listed["pagination"] == {"next": None}
    assert listed["databases"][0] == db

    assert await api.call("DELETE", "/databases/alice") == (200, {"database": "alice"})
    not_found = {"error": "could not find database with name alice: record not found"}
    assert await api.call("GET", "/databases/alice") == (404, not_found)
    assert await api.call("DELETE", "/databases/alice") == (404, not_found)
    assert not api.turso.protocol.database_exists("alice")


async def test_create_twice_is_409_and_changes_nothing(api: Api) -> None:
    _, first = await api.create("alice")
    assert await api.create("alice") == (
        409,
        {"error": "database with name alice already exists"},
    )
    _, got = await api.call("GET", "/databases/alice")
    assert got["database"]["DbId"] == first["database"]["DbId"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Alice", "group": "default"},
        {"name": "-alice", "group": "default"},
        {"name": "alice-", "group": "default"},
        {"name": "a_b", "group": "default"},
        {"name": "a" * 65, "group": "default"},
        {"name": "", "group": "default"},
        {"name": 7, "group": "default"},
        {"group": "default"},
        {"name": "alice"},
        {"name": "alice", "group": "default", "seed": {"type": "database", "name": "x"}},
        ["alice"],
    ],
)
async def test_invalid_create_requests_are_400(api: Api, body: object) -> None:
    status, error = await api.call("POST", "/databases", body=body)
    assert status == 400
    assert isinstance(error["error"], str)
    assert api.turso.registry.database_count == 0


async def test_create_with_non_json_body_is_400(api: Api) -> None:
    status, error = await api.call("POST", "/databases", raw=b"name=alice")
    assert status == 400
    assert "JSON" in error["error"]


async def test_create_in_unknown_group_is_400(api: Api) -> None:
    assert await api.create("alice", group="nope") == (400, {"error": "group not found"})


async def test_64_character_name_is_fine(api: Api) -> None:
    status, _ = await api.create("a" * 64)
    assert status == 200


async def test_quota_is_402_and_frees_up_after_delete(api: Api) -> None:
    for i in range(5):
        assert (await api.create(f"db-{i}"))[0] == 200
    status, body = await api.create("db-5")
    assert status == 402
    assert "5 databases" in body["error"]
    assert (await api.call("DELETE", "/databases/db-0"))[0] == 200
    assert (await api.create("db-5"))[0] == 200


async def test_plans_and_usage(api: Api) -> None:
    await api.create("alice")
    await api.create("bob")
    status, plans = await api.call("GET", "/plans")
    assert status == 200
    assert plans["plans"][0]["quotas"]["databases"] == 5
    assert {"rowsRead", "rowsWritten", "storage"} <= set(plans["plans"][0]["quotas"])
    status, usage = await api.call("GET", "/usage")
    assert status == 200
    assert usage["organization"]["usage"]["databases"] == 2
    assert usage["organization"]["usage"]["storage_bytes"] > 0
    assert {"rows_read", "rows_written", "storage_bytes"} <= set(usage["organization"]["usage"])
    status, subscription = await api.call("GET", "/subscription")
    assert status == 200
    assert subscription["subscription"]["plan"] == "local"


async def test_list_pages_with_limit_and_cursor(api: Api) -> None:
    names = ["e", "a", "d", "c", "b"]
    for name in names:
        await api.create(name)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, body = await api.call("GET", "/databases" + query)
        assert status == 200
        pages += 1
        seen.extend(d["Name"] for d in body["databases"])
        cursor = body["pagination"]["next"]
        if cursor is None:
            break
    assert seen == sorted(names)
    assert pages == 3


async def test_cursor_survives_deleting_the_last_seen_database(api: Api) -> None:
    for name in "abcd":
        await api.create(name)
    _, first = await api.call("GET", "/databases?limit=2")
    assert first["pagination"]["next"] == "b"
    await api.call("DELETE", "/databases/b")
    _, second = await api.call("GET", "/databases?limit=2&cursor=b")
    assert [d["Name"] for d in second["databases"]] == ["c", "d"]
    assert second["pagination"]["next"] is None


@pytest.mark.parametrize("limit", ["0", "-1", "x", "1.5", "10001"])
async def test_bad_limit_is_400(api: Api, limit: str) -> None:
    status, _ = await api.call("GET", f"/databases?limit={limit}")
    assert status == 400


async def test_list_filters_by_group_and_parent(api: Api) -> None:
    assert (await api.call("POST", "/groups", body={"name": "eu", "location": "local"}))[0] == 200
    await api.create("alice")
    await api.create("bob", group="eu")
    _, eu = await api.call("GET", "/databases?group=eu")
    assert [d["Name"] for d in eu["databases"]] == ["bob"]
    _, default = await api.call("GET", "/databases?group=default")
    assert [d["Name"] for d in default["databases"]] == ["alice"]
    _, branches = await api.call("GET", "/databases?parent=some-id")
    assert branches["databases"] == []


# --- tokens ----------------------------------------------------------------------------------


async def test_token_routes(api: Api) -> None:
    await api.create("alice")
    for query in ["", "?expiration=30d", "?expiration=2w1d30m&authorization=read-only"]:
        status, body = await api.call("POST", f"/databases/alice/auth/tokens{query}")
        assert status == 200
        assert body["jwt"].count(".") == 2
    # The official JS client sends this body without a JSON content type.
    status, _ = await api.call(
        "POST",
        "/databases/alice/auth/tokens?expiration=never",
        raw=b'{"permissions":{"read_attach":{"databases":[]}}}',
    )
    assert status == 200
    assert await api.call("POST", "/databases/alice/auth/tokens?expiration=soon") == (
        400,
        {"error": "Invalid expiration format"},
    )
    status, body = await api.call("POST", "/databases/alice/auth/tokens?authorization=admin")
    assert status == 400
    assert "read-only" in body["error"]
    assert await api.call("POST", "/databases/nope/auth/tokens") == (
        404,
        {"error": "could not find database with name nope: record not found"},
    )


async def test_rotate_is_200_without_body(api: Api) -> None:
    await api.create("alice")
    assert await api.call("POST", "/databases/alice/auth/rotate") == (200, None)
    assert api.turso.registry.database("alice").generation == 1  # type: ignore[union-attr]
    status, _ = await api.call("POST", "/databases/nope/auth/rotate")
    assert status == 404


# --- groups ----------------------------------------------------------------------------------


async def test_groups(api: Api) -> None:
    status, body = await api.call("GET", "/groups")
    assert status == 200
    assert [g["name"] for g in body["groups"]] == ["default"]
    status, body = await api.call("GET", "/groups/default")
    assert status == 200
    assert body["group"]["name"] == "default"
    assert body["group"]["primary"] == "local"
    assert body["group"]["uuid"]
    assert await api.call("GET", "/groups/nope") == (404, {"error": "group not found"})
    status, body = await api.call("POST", "/groups", body={"name": "eu", "location": "local"})
    assert status == 200
    assert body["group"]["name"] == "eu"
    assert await api.call("POST", "/groups", body={"name": "eu", "location": "local"}) == (
        409,
        {"error": "group already exists"},
    )
    assert (await api.call("POST", "/groups", body={"name": "Bad"}))[0] == 400
    assert (await api.call("POST", "/groups/eu/auth/tokens?expiration=1d"))[0] == 200
    assert (await api.call("POST", "/groups/eu/auth/tokens?expiration=x"))[0] == 400
    assert (await api.call("POST", "/groups/nope/auth/tokens"))[0] == 404
    assert await api.call("POST", "/groups/eu/auth/rotate") == (200, None)
    assert (await api.call("POST", "/groups/nope/auth/rotate"))[0] == 404


# --- faults ----------------------------------------------------------------------------------


async def _statuses_under_faults(tmp_path: Path, seed: int) -> tuple[list[int], Api, list[str]]:
    app = create_local_turso_app(tmp_path, org=ORG, api_token=TOKEN, fail_rate=0.5, seed=seed)
    statuses: list[int] = []
    retry_after: list[str] = []
    async with serve(app) as address, aiohttp.ClientSession() as session:
        api = Api(address=address, turso=local_turso(app), session=session)
        for i in range(40):
            headers = {"Authorization": f"Bearer {TOKEN}"}
            body = {"name": f"db-{i}", "group": "default"}
            async with session.post(f"{api.org_url}/databases", json=body, headers=headers) as r:
                statuses.append(r.status)
                if r.status == 429:
                    retry_after.append(r.headers["Retry-After"])
                if r.status != 200:
                    assert "error" in await r.json()
    return statuses, api, retry_after


async def test_fail_rate_injects_faults_before_executing(tmp_path: Path) -> None:
    statuses, api, retry_after = await _statuses_under_faults(tmp_path / "one", seed=7)
    assert set(statuses) <= {200, 500, 503, 429}
    assert 200 in statuses
    assert {500, 503, 429} <= set(statuses)
    created = {f"db-{i}" for i, status in enumerate(statuses) if status == 200}
    # A request answered with a fault never ran: exactly the 200s exist.
    assert {r.name for r in api.turso.registry.databases()} == created
    assert api.turso.protocol.counts.count(route="platform/create_database") == len(created)
    assert sum(api.turso.faults.injected.values()) == 40 - len(created)
    for value in retry_after:
        if value != "1":
            parsed = email.utils.parsedate_to_datetime(value)
            assert parsed.timestamp() >= time.time()


async def test_fail_rate_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    first, _, _ = await _statuses_under_faults(tmp_path / "one", seed=11)
    second, _, _ = await _statuses_under_faults(tmp_path / "two", seed=11)
    assert first == second


async def test_faults_spare_the_sql_protocol(tmp_path: Path) -> None:
    app = create_local_turso_app(tmp_path, api_token=TOKEN, fail_rate=1.0, seed=1)
    async with serve(app) as address, aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(f"{address.url}/health") as response:
                assert response.status == 200
        async with session.get(f"{address.url}/v1/auth/validate") as response:
            assert response.status in (500, 503, 429)


async def test_latency_delays_platform_and_sql_requests(tmp_path: Path) -> None:
    app = create_local_turso_app(tmp_path, api_token=TOKEN, latency=0.15)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(app) as address, aiohttp.ClientSession() as session:
        for url in (f"{address.url}/v1/auth/validate", f"{address.url}/health"):
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                assert response.status == 200
            assert time.perf_counter() - started >= 0.15


def test_bad_fault_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        create_local_turso_app(tmp_path, fail_rate=1.5)
    with pytest.raises(ValueError, match="latency"):
        create_local_turso_app(tmp_path, latency=-1)
    with pytest.raises(ValueError, match="max_databases"):
        create_local_turso_app(tmp_path, max_databases=-1)


def test_repr_hides_the_api_token(tmp_path: Path) -> None:
    app = create_local_turso_app(tmp_path, api_token="very-secret-token")
    assert "very-secret-token" not in repr(local_turso(app))


# --- command line ----------------------------------------------------------------------------


async def test_command_line_prints_url_org_and_token(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "per_user_db.dev",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--org",
        ORG,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines: dict[str, str] = {}
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode()
            assert line, "the server exited before it was ready"
            if line.startswith("press Ctrl-C"):
                break
            key, _, value = line.strip().partition(":")
            lines[key] = value.strip()
        url = lines["API base URL"].split()[0]
        token = lines["API token"]
        assert lines["organization"] == ORG
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/v1/auth/validate", headers=headers) as response,
        ):
            assert response.status == 200
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=10)


async def test_command_line_keeps_the_plain_protocol_mode(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "per_user_db.dev",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--create-on-demand",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode()
        url = line.split(" at ")[1].strip().replace("<name>", "fresh")
        async with aiohttp.ClientSession() as session, session.get(url + "v3") as response:
            assert response.status == 200  # no token needed, no Platform API
        async with (
            aiohttp.ClientSession() as session,
            session.get(url.split("/db/")[0] + "/v1/auth/validate") as response,
        ):
            assert response.status == 404
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=10)
