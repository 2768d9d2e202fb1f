"""The Platform API client against a scripted server on 127.0.0.1: the shapes a real
server rarely gives (bad bodies, Retry-After dates, resets), retries and their bounds."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import AsyncIterator

import pytest

from per_user_db import CreateStep, Err, Ok, ProvisionFailed, Settings, create_database
from per_user_db.core._platform import (
    BadRequest,
    InvalidResponse,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    Unauthorized,
)
from per_user_db.turso import PlatformClient, RetryPolicy

from .scripted_server import Recorded, Reply, ScriptedServer, scripted_server

API_TOKEN = "platform-api-token-SECRET"
ORG = "acme"
DBS = f"/v1/organizations/{ORG}/databases"
FAST = RetryPolicy(attempts=4, deadline=5.0, base_delay=0.01, max_delay=0.02, request_timeout=0.5)


def jwt(exp: int | None) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"a": "rw", "id": "db-uuid", "iat": 1} | ({"exp": exp} if exp else {})
    return f"{part({'alg': 'EdDSA'})}.{part(claims)}.c2lnbmF0dXJl"


def database(name: str) -> dict[str, object]:
    return {
        "database": {
            "Name": name,
            "DbId": "db-uuid",
            "Hostname": f"{name}-acme.aws-eu-west-1.turso.io",
        }
    }


@pytest.fixture
async def fake() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as server:
        yield server


def client(fake: ScriptedServer, retry: RetryPolicy = FAST) -> PlatformClient:
    return PlatformClient(api_token=API_TOKEN, organization=ORG, api_url=fake.url, retry=retry)


def settings(fake: ScriptedServer) -> Settings:
    return Settings(
        api_token=API_TOKEN, organization=ORG, api_url=fake.url, app_env="production", retry=FAST
    )


async def test_create_sends_the_documented_requests(fake: ScriptedServer) -> None:
    name = settings(fake).name_of("user-1")
    exp = int(time.time()) + 30 * 86400
    fake.on("POST", DBS, Reply(body=database(name)))
    fake.on("POST", f"{DBS}/{name}/auth/tokens", Reply(body={"jwt": jwt(exp)}))
    credentials = (await create_database("user-1", settings=settings(fake))).unwrap()
    assert credentials.url == f"libsql://{name}-acme.aws-eu-west-1.turso.io"  # as returned
    assert credentials.expires_at == dt.datetime.fromtimestamp(exp, tz=dt.UTC)
    create, token = fake.requests
    assert create.json() == {"name": name, "group": "default"}
    assert create.headers["Authorization"] == f"Bearer {API_TOKEN}"
    assert token.query == {"expiration": "30d", "authorization": "full-access"}


async def test_a_failed_token_says_so_and_the_next_call_completes(fake: ScriptedServer) -> None:
    name = settings(fake).name_of("user-1")
    fake.on("POST", DBS, Reply(body=database(name)))
    fake.on(
        "POST",
        f"{DBS}/{name}/auth/tokens",
        Reply(status=500, body='{"error": "boom"}'),
        repeat=True,
    )
    failed = await create_database("user-1", settings=settings(fake))
    assert isinstance(failed, Err)
    assert isinstance(failed.error, ProvisionFailed)
    assert failed.error.step is CreateStep.ISSUE_TOKEN
    assert failed.error.database_created
    assert "the database exists but has no token yet; call again to finish" in str(failed.error)
    assert fake.count("POST", f"{DBS}/{name}/auth/tokens") == FAST.attempts  # 5xx retried

    async with scripted_server() as again:
        again.on(
            "POST",
            DBS,
            Reply(status=409, body={"error": f"database with name {name} already exists"}),
        )
        again.on("GET", f"{DBS}/{name}", Reply(body=database(name)))
        again.on("POST", f"{DBS}/{name}/auth/tokens", Reply(body={"jwt": jwt(None)}))
        done = (await create_database("user-1", settings=settings(again))).unwrap()
        assert done.name == name
        assert done.expires_at is None


async def test_a_409_whose_get_404s_creates_once_more(fake: ScriptedServer) -> None:
    name = settings(fake).name_of("u")
    fake.on("POST", DBS, Reply(status=409, body={"error": "exists"}), Reply(body=database(name)))
    fake.on("GET", f"{DBS}/{name}", Reply(status=404, body={"error": "record not found"}))
    fake.on("POST", f"{DBS}/{name}/auth/tokens", Reply(body={"jwt": jwt(None)}))
    assert isinstance(await create_database("u", settings=settings(fake)), Ok)
    assert fake.count("POST", DBS) == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "the body is not JSON"),
        ({"database": {"Name": "x"}}, "lacks Name, DbId or Hostname"),
        ({"db": {}}, "expected an object with a 'database' field"),
    ],
)
async def test_bodies_not_as_the_spec_says_are_invalid_responses(
    fake: ScriptedServer, body: object, problem: str
) -> None:
    fake.on("POST", DBS, Reply(body=body))
    async with client(fake) as api:
        result = await api.create_database("x")
    assert isinstance(result, Err)
    assert isinstance(result.error, InvalidResponse)
    assert problem in str(result.error)


async def test_an_unreadable_token_is_an_invalid_response(fake: ScriptedServer) -> None:
    name = settings(fake).name_of("u")
    fake.on("POST", DBS, Reply(body=database(name)))
    fake.on("POST", f"{DBS}/{name}/auth/tokens", Reply(body={"jwt": "not-a-jwt"}))
    result = await create_database("u", settings=settings(fake))
    assert isinstance(result, Err)
    assert isinstance(result.error, ProvisionFailed)
    assert isinstance(result.error.error, InvalidResponse)


async def test_retry_after_seconds_and_dates_are_honoured(fake: ScriptedServer) -> None:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    fake.on(
        "GET",
        f"{DBS}/x",
        Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "1"}),
        Reply(status=503, body="busy", headers={"Retry-After": soon}),
        Reply(body=database("x")),
    )
    started = time.monotonic()
    async with client(fake, RetryPolicy(attempts=3, deadline=10.0, base_delay=0.01)) as api:
        assert isinstance(await api.get_database("x"), Ok)
    assert time.monotonic() - started >= 1.0


async def test_retries_stop_at_the_attempt_count_and_the_deadline(fake: ScriptedServer) -> None:
    fake.on("GET", f"{DBS}/x", Reply(status=503, body="down"), repeat=True)
    async with client(fake) as api:
        result = await api.get_database("x")
    assert isinstance(result, Err)
    assert isinstance(result.error, ServerError)
    assert fake.count("GET", f"{DBS}/x") == FAST.attempts
    fake.on(
        "GET",
        f"{DBS}/y",
        Reply(status=429, body="later", headers={"Retry-After": "60"}),
        repeat=True,
    )
    async with client(fake) as api:
        limited = await api.get_database("y")
    assert isinstance(limited, Err)
    assert isinstance(limited.error, RateLimited)
    assert limited.error.retry_after == 60
    assert fake.count("GET", f"{DBS}/y") == 1  # waiting 60 s would pass the 5 s deadline


async def test_other_4xx_are_never_retried(fake: ScriptedServer) -> None:
    fake.on("POST", DBS, Reply(status=400, body={"error": "group not found"}), repeat=True)
    fake.on("GET", f"{DBS}/x", Reply(status=401, body={"error": "invalid token"}), repeat=True)
    async with client(fake) as api:
        bad = await api.create_database("x", group="nope")
        unauthorized = await api.get_database("x")
    assert isinstance(bad, Err)
    assert isinstance(bad.error, BadRequest)
    assert "group not found" in str(bad.error)
    assert isinstance(unauthorized, Err)
    assert isinstance(unauthorized.error, Unauthorized)
    assert len(fake.requests) == 2
    assert API_TOKEN not in str(bad.error) + str(unauthorized.error)


async def test_connection_resets_and_timeouts_are_retried(fake: ScriptedServer) -> None:
    fake.on(
        "GET",
        f"{DBS}/x",
        Reply(drop=True),
        Reply(delay=1.0, body=database("x")),
        Reply(body=database("x")),
    )
    async with client(fake) as api:
        assert isinstance(await api.get_database("x"), Ok)
    assert fake.count("GET", f"{DBS}/x") == 3
    fake.on("GET", f"{DBS}/z", Reply(drop=True), repeat=True)
    async with client(fake) as api:
        dropped = await api.get_database("z")
    assert isinstance(dropped, Err)
    assert isinstance(dropped.error, NetworkError)
    fake.on("GET", f"{DBS}/slow", Reply(delay=1.0, body=database("slow")), repeat=True)
    async with client(fake, RetryPolicy(attempts=2, request_timeout=0.2, base_delay=0.01)) as api:
        slow = await api.get_database("slow")
    assert isinstance(slow, Err)
    assert isinstance(slow.error, Timeout)


async def test_listing_follows_cursors_and_filters(fake: ScriptedServer) -> None:
    def page(request: Recorded) -> Reply:
        cursor = request.query.get("cursor")
        if cursor is None:
            names, following = ["app-a", "other-b"], "c1"
        else:
            names, following = ["app-c"], None
        body = {
            "databases": [database(n)["database"] for n in names],
            "pagination": {"next": following},
        }
        return Reply(body=body)

    fake.on("GET", DBS, page, repeat=True)
    async with client(fake) as api:
        found = (await api.list_databases(group="default", prefix="app-")).unwrap()
    assert [d.name for d in found] == ["app-a", "app-c"]
    assert [r.query.get("cursor") for r in fake.requests] == [None, "c1"]
    assert all(r.query.get("group") == "default" for r in fake.requests)


async def test_listing_without_pagination(fake: ScriptedServer) -> None:
    fake.on("GET", DBS, Reply(body={"databases": [database("a")["database"]]}))
    async with client(fake) as api:
        assert [d.name for d in (await api.list_databases()).unwrap()] == ["a"]
    assert len(fake.requests) == 1


async def test_delete_404_is_already_gone_and_names_are_encoded(fake: ScriptedServer) -> None:
    fake.on("DELETE", f"{DBS}/gone", Reply(status=404, body={"error": "not found"}))
    fake.on("DELETE", f"{DBS}/here", Reply(body={"database": "here"}))
    async with client(fake) as api:
        assert (await api.delete_database("gone")).unwrap() is False
        assert (await api.delete_database("here")).unwrap() is True
        await api.get_database("a/b?c")
    assert fake.requests[-1].raw_path == f"{DBS}/a%2Fb%3Fc"


async def test_tokens_groups_validate_plans_usage(fake: ScriptedServer) -> None:
    fake.on("POST", f"{DBS}/d/auth/tokens", Reply(body={"jwt": jwt(None)}))
    fake.on("POST", f"{DBS}/d/auth/rotate", Reply())
    fake.on(
        "GET",
        f"/v1/organizations/{ORG}/groups/default",
        Reply(
            body={
                "group": {
                    "name": "default",
                    "uuid": "g",
                    "primary": "aws-eu-west-1",
                    "locations": ["aws-eu-west-1"],
                }
            }
        ),
    )
    fake.on("GET", "/v1/auth/validate", Reply(body={"exp": -1}))
    fake.on(
        "GET",
        f"/v1/organizations/{ORG}/plans",
        Reply(body={"plans": [{"name": "scaler", "quotas": {"databases": 10000}}]}),
    )
    fake.on(
        "GET",
        f"/v1/organizations/{ORG}/usage",
        Reply(body={"organization": {"usage": {"databases": 12, "storage_bytes": 5}}}),
    )
    fake.on("GET", f"{DBS}/missing", Reply(status=404, body={"error": "could not find database"}))
    async with client(fake) as api:
        assert isinstance(
            await api.create_token("d", expires_in_days=None, authorization="read-only"), Ok
        )
        assert fake.requests[-1].query == {"expiration": "never", "authorization": "read-only"}
        assert isinstance(await api.invalidate_tokens("d"), Ok)
        assert (await api.get_group("default")).unwrap().locations == ("aws-eu-west-1",)
        assert (await api.validate_token()).unwrap() is None
        assert (await api.plans()).unwrap()[0].database_quota == 10000
        assert (await api.usage()).unwrap().databases == 12
        missing = await api.get_database("missing")
        assert isinstance(missing, Err)
        assert isinstance(missing.error, NotFound)
        assert missing.error.status == 404
    assert API_TOKEN not in repr(api)
