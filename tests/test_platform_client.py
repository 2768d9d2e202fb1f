"""The Platform API client against a scripted server on 127.0.0.1: the shapes a real
server rarely gives (bad bodies, Retry-After dates, resets), retries and their bounds."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from per_user_db import CreateStep, Err, Ok, ProvisionFailed, Settings, create_database
from per_user_db.core._platform import (
    BadRequest,
    Forbidden,
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


# --- what counts as success, and the policy's bounds ---------------------------------------


async def test_any_2xx_is_a_success_with_or_without_a_body(fake: ScriptedServer) -> None:
    fake.on("POST", DBS, Reply(status=201, body=database("x")))
    fake.on("DELETE", f"{DBS}/x", Reply(status=204))
    fake.on("POST", f"{DBS}/x/auth/rotate", Reply(status=204), Reply(status=200, body=" \n"))
    fake.on("POST", f"{DBS}/x/auth/tokens", Reply(status=201, body={"jwt": jwt(None)}))
    fake.on("GET", f"{DBS}/x", Reply(status=299, body=database("x")))
    async with client(fake) as api:
        assert (await api.create_database("x")).unwrap().name == "x"
        assert await api.delete_database("x") == Ok(True)
        assert await api.invalidate_tokens("x") == Ok(None)
        assert await api.invalidate_tokens("x") == Ok(None)  # a blank body is no body
        assert (await api.create_token("x")).unwrap() == jwt(None)
        assert (await api.get_database("x")).unwrap().name == "x"
    assert len(fake.requests) == 6  # none of them retried
    create, *_, token, _ = fake.requests
    assert create.json() == {"name": "x", "group": "default"}  # the default group
    assert token.query == {"expiration": "30d", "authorization": "full-access"}  # 30 days


async def test_a_3xx_is_not_a_success_and_a_2xx_must_be_json(fake: ScriptedServer) -> None:
    fake.on("GET", f"{DBS}/x", Reply(status=300, body={"error": "pick one"}))
    fake.on("POST", DBS, Reply(status=201, body="created!"), Reply(status=201))
    async with client(fake) as api:
        moved = await api.get_database("x")
        created = await api.create_database("y")
        empty = await api.create_database("z")
    assert isinstance(empty, Err)  # a 2xx without the documented body is not a database
    assert isinstance(empty.error, InvalidResponse)
    assert empty.error.operation == "create database"
    assert moved == Err(BadRequest(operation="get database", status=300, message="pick one"))
    assert created == Err(
        InvalidResponse(operation="create database", status=201, message="the body is not JSON")
    )


def test_the_retry_policy_defaults_and_what_it_refuses() -> None:
    policy = RetryPolicy()
    assert (
        policy.attempts,
        policy.deadline,
        policy.base_delay,
        policy.max_delay,
        policy.request_timeout,
    ) == (5, 30.0, 0.2, 5.0, 10.0)
    for smallest in (
        RetryPolicy(attempts=1),
        RetryPolicy(deadline=0.001),
        RetryPolicy(request_timeout=0.001),
    ):
        assert smallest != policy
    message = r"^attempts, deadline and request_timeout must be positive$"
    for bad in ({"attempts": 0}, {"deadline": 0.0}, {"request_timeout": 0.0}, {"deadline": -1.0}):
        with pytest.raises(ValueError, match=message):
            RetryPolicy(**bad)


def test_a_client_needs_a_token_and_an_organization_and_never_shows_the_token() -> None:
    for token, org in (("", ORG), (API_TOKEN, "")):
        with pytest.raises(ValueError, match=r"^api_token and organization are required$"):
            PlatformClient(api_token=token, organization=org)
    api = PlatformClient(api_token=API_TOKEN, organization=ORG, api_url="http://h:1/X/")
    assert repr(api) == f"<PlatformClient http://h:1/X org={ORG}>"
    assert api.organization == ORG
    default = PlatformClient(api_token=API_TOKEN, organization=ORG)
    assert repr(default) == f"<PlatformClient https://api.turso.tech org={ORG}>"


async def test_requests_carry_the_headers_and_go_under_the_base_url(fake: ScriptedServer) -> None:
    fake.on("GET", f"{DBS}/x", Reply(body=database("x")), repeat=True)
    async with PlatformClient(
        api_token=API_TOKEN, organization=ORG, api_url=fake.url + "/", retry=FAST
    ) as api:
        assert isinstance(await api.get_database("x"), Ok)
        assert api.requests_sent == 1
        await api.close()  # closed, then used again: a new session opens
        assert isinstance(await api.get_database("x"), Ok)
        assert api.requests_sent == 2
    [first, second] = fake.requests
    assert first.raw_path == f"{DBS}/x"
    assert first.headers["Authorization"] == f"Bearer {API_TOKEN}"
    assert first.headers["Accept"] == "application/json"
    assert second.headers["Authorization"] == f"Bearer {API_TOKEN}"


async def test_a_session_passed_in_is_used_and_left_open(fake: ScriptedServer) -> None:
    fake.on("GET", f"{DBS}/x", Reply(body=database("x")))
    async with aiohttp.ClientSession() as session:
        async with PlatformClient(
            api_token=API_TOKEN, organization=ORG, api_url=fake.url, retry=FAST, session=session
        ) as api:
            assert isinstance(await api.get_database("x"), Ok)
        assert not session.closed


async def test_token_lifetimes_and_every_operation_passes_its_error_on(
    fake: ScriptedServer,
) -> None:
    fake.on("POST", f"{DBS}/d/auth/tokens", Reply(body={"jwt": jwt(None)}))
    for path in (
        f"{DBS}/e/auth/tokens",
        f"{DBS}/e/auth/rotate",
        f"/v1/organizations/{ORG}/groups/e",
        "/v1/auth/validate",
        f"/v1/organizations/{ORG}/plans",
        f"/v1/organizations/{ORG}/usage",
    ):
        fake.on(
            "POST" if "/auth/" in path and "validate" not in path else "GET",
            path,
            Reply(status=403, body={"error": "not yours"}),
        )
    fake.on("DELETE", f"{DBS}/e", Reply(status=403, body={"error": "not yours"}))
    async with client(fake) as api:
        with pytest.raises(
            ValueError, match=r"^expires_in_days must be at least 1, or None for never$"
        ):
            await api.create_token("d", expires_in_days=0)
        assert isinstance(await api.create_token("d", expires_in_days=1), Ok)
        assert fake.requests[-1].query == {"expiration": "1d", "authorization": "full-access"}
        results = [
            await api.create_token("e"),
            await api.invalidate_tokens("e"),
            await api.get_group("e"),
            await api.validate_token(),
            await api.plans(),
            await api.usage(),
            await api.delete_database("e"),
        ]
    for result in results:
        assert isinstance(result, Err)
        assert isinstance(result.error, Forbidden)
        assert result.error.message == "not yours"
    assert [r.error.operation for r in results if isinstance(r, Err)] == [
        "create database token",
        "invalidate database tokens",
        "get group",
        "validate API token",
        "list plans",
        "get usage",
        "delete database",
    ]
    assert len(fake.requests) == 8  # 403 is never retried


@pytest.mark.parametrize(
    ("operation", "method", "path"),
    [
        ("create database", "POST", DBS),
        ("get database", "GET", f"{DBS}/x"),
        ("list databases", "GET", DBS),
        ("create database token", "POST", f"{DBS}/x/auth/tokens"),
        ("get group", "GET", f"/v1/organizations/{ORG}/groups/x"),
        ("list plans", "GET", f"/v1/organizations/{ORG}/plans"),
        ("get usage", "GET", f"/v1/organizations/{ORG}/usage"),
    ],
)
async def test_a_body_not_as_documented_names_its_operation(
    fake: ScriptedServer, operation: str, method: str, path: str
) -> None:
    fake.on(method, path, Reply(body={"unexpected": True}))
    fake.on(method, path, Reply(status=404, body={"error": "gone"}))
    calls = {
        "create database": lambda api: api.create_database("x"),
        "get database": lambda api: api.get_database("x"),
        "list databases": lambda api: api.list_databases(),
        "create database token": lambda api: api.create_token("x"),
        "get group": lambda api: api.get_group("x"),
        "list plans": lambda api: api.plans(),
        "get usage": lambda api: api.usage(),
    }
    async with client(fake) as api:
        invalid = await calls[operation](api)
        missing = await calls[operation](api)
    assert isinstance(invalid, Err)
    assert isinstance(invalid.error, InvalidResponse)
    assert (invalid.error.operation, invalid.error.status) == (operation, 200)
    assert missing == Err(NotFound(operation=operation, status=404, message="gone"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"exp": 0}, Ok(0)),
        ({"exp": 1893456000}, Ok(1893456000)),
        ({"exp": -1}, Ok(None)),
        ({"exp": True}, None),
        ({"exp": "1893456000"}, None),
        ({}, None),
        ([{"exp": 1}], None),
    ],
)
async def test_validate_token_reads_exp(
    fake: ScriptedServer, body: object, expected: object
) -> None:
    fake.on("GET", "/v1/auth/validate", Reply(body=body))
    async with client(fake) as api:
        result = await api.validate_token()
    assert result == (
        expected
        or Err(
            InvalidResponse(
                operation="validate API token", status=200, message="expected {'exp': <int>}"
            )
        )
    )


# --- the waits between attempts, on a virtual clock -----------------------------------------


class VirtualTime:
    """``monotonic`` and ``sleep`` for a client: sleeping records the wait and moves the
    clock by it (plus ``oversleep``, as a busy machine would), spending no real time."""

    def __init__(self, *, oversleep: float = 0.0) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.oversleep = oversleep

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep


class Dice(random.Random):
    """Jitter that always draws ``unit``."""

    def __init__(self, unit: float) -> None:
        super().__init__()
        self.unit = unit

    def random(self) -> float:
        return self.unit


WALL = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def virtual_client(
    fake: ScriptedServer, clock: VirtualTime, retry: RetryPolicy, unit: float = 1.0
) -> PlatformClient:
    return PlatformClient(
        api_token=API_TOKEN,
        organization=ORG,
        api_url=fake.url,
        retry=retry,
        rng=Dice(unit),
        clock=lambda: WALL,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )


@pytest.mark.parametrize(
    ("unit", "waits"),
    [(1.0, [1.0, 2.0, 4.0, 5.0, 5.0]), (0.5, [0.5, 1.0, 2.0, 2.5, 2.5]), (0.0, [0.0] * 5)],
)
async def test_waits_double_up_to_the_cap_with_jitter_and_none_after_the_last_attempt(
    fake: ScriptedServer, unit: float, waits: list[float]
) -> None:
    fake.on("GET", f"{DBS}/x", Reply(status=503, body="down"), repeat=True)
    clock = VirtualTime()
    retry = RetryPolicy(attempts=6, deadline=1000.0, base_delay=1.0, max_delay=5.0)
    async with virtual_client(fake, clock, retry, unit) as api:
        result = await api.get_database("x")
    assert result == Err(ServerError(operation="get database", status=503, message="down"))
    assert clock.sleeps == waits
    assert fake.count("GET", f"{DBS}/x") == 6


async def test_a_retry_after_longer_than_the_backoff_is_waited_and_a_shorter_one_not(
    fake: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    in_seven_seconds = (WALL + dt.timedelta(seconds=7)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    fake.on(
        "GET",
        f"{DBS}/x",
        Reply(status=429, body="slow", headers={"Retry-After": in_seven_seconds}),
        Reply(status=503, body="busy", headers={"Retry-After": "3"}),
        Reply(status=429, body="wait", headers={"Retry-After": "9"}),
        Reply(body=database("x")),
    )
    clock = VirtualTime()
    retry = RetryPolicy(attempts=4, deadline=1000.0, base_delay=2.0, max_delay=10.0)
    with caplog.at_level(logging.DEBUG, logger="per_user_db"):
        async with virtual_client(fake, clock, retry) as api:
            assert isinstance(await api.get_database("x"), Ok)
    assert clock.sleeps == [7.0, 4.0, 9.0]  # the longer of the backoff (2, 4, 8) and the header
    assert [r.getMessage() for r in caplog.records if r.name == "per_user_db"] == [
        "get database failed (RateLimited during get database (HTTP 429): slow); retry 1 in 7.00 s",
        "get database failed (ServerError during get database (HTTP 503): busy); retry 2 in 4.00 s",
        "get database failed (RateLimited during get database (HTTP 429): wait); retry 3 in 9.00 s",
    ]


@pytest.mark.parametrize(("deadline", "attempts"), [(8.0, 2), (8.001, 3), (12.0, 3)])
async def test_no_wait_may_reach_the_deadline(
    fake: ScriptedServer, deadline: float, attempts: int
) -> None:
    fake.on("GET", f"{DBS}/x", Reply(status=500, body="boom"), repeat=True)
    clock = VirtualTime()
    retry = RetryPolicy(attempts=10, deadline=deadline, base_delay=4.0, max_delay=4.0)
    async with virtual_client(fake, clock, retry) as api:
        result = await api.get_database("x")
    assert isinstance(result, Err)
    assert fake.count("GET", f"{DBS}/x") == attempts
    assert clock.sleeps == [4.0] * (attempts - 1)  # a wait to the deadline is not started


async def test_retry_after_dates_are_read_against_the_real_clock_by_default(
    fake: ScriptedServer,
) -> None:
    fake.on(
        "GET",
        f"{DBS}/x",
        Reply(status=429, body="slow", headers={"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}),
        Reply(status=429, body="slow", headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}),
    )
    clock = VirtualTime()
    retry = RetryPolicy(attempts=3, deadline=1000.0, base_delay=2.0, max_delay=2.0)
    async with PlatformClient(
        api_token=API_TOKEN,
        organization=ORG,
        api_url=fake.url,
        retry=retry,
        rng=Dice(1.0),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    ) as api:
        result = await api.get_database("x")
    assert clock.sleeps == [2.0]  # a date in the past: the backoff alone
    assert isinstance(result, Err)
    assert isinstance(result.error, RateLimited)
    until_2100 = dt.datetime(2100, 1, 1, tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
    assert result.error.retry_after is not None
    assert abs(result.error.retry_after - until_2100.total_seconds()) < 3600  # not waited


async def test_the_deadline_shortens_the_last_attempts_timeout(fake: ScriptedServer) -> None:
    fake.on(
        "GET",
        f"{DBS}/x",
        Reply(status=503, body="busy"),
        Reply(delay=2.0, body=database("x")),
    )
    clock = VirtualTime()
    retry = RetryPolicy(attempts=2, deadline=10.0, base_delay=9.9, max_delay=9.9)
    async with virtual_client(fake, clock, retry) as api:
        result = await api.get_database("x")
    assert result == Err(
        Timeout(operation="get database", status=None, message="no answer within 0.1 s")
    )


async def test_an_attempt_past_the_deadline_still_gets_a_moment(fake: ScriptedServer) -> None:
    # The wait overran (a busy machine): the next attempt has a millisecond, not a
    # negative timeout and not the whole request timeout.
    fake.on(
        "GET",
        f"{DBS}/x",
        Reply(status=503, body="busy"),
        Reply(delay=2.0, body=database("x")),
    )
    clock = VirtualTime(oversleep=20.0)
    retry = RetryPolicy(attempts=2, deadline=10.0, base_delay=1.0, max_delay=1.0)
    async with virtual_client(fake, clock, retry) as api:
        result = await api.get_database("x")
    assert result == Err(
        Timeout(operation="get database", status=None, message="no answer within 0.001 s")
    )


async def test_each_attempt_has_the_request_timeout(fake: ScriptedServer) -> None:
    fake.on("GET", f"{DBS}/x", Reply(delay=2.0, body=database("x")))
    fake.on("GET", f"{DBS}/y", Reply(drop=True), repeat=True)
    clock = VirtualTime()
    retry = RetryPolicy(attempts=1, deadline=1000.0, request_timeout=0.05)
    async with virtual_client(fake, clock, retry) as api:
        slow = await api.get_database("x")
        dropped = await api.get_database("y")
    assert slow == Err(
        Timeout(operation="get database", status=None, message="no answer within 0.05 s")
    )
    assert isinstance(dropped, Err)
    assert isinstance(dropped.error, NetworkError)
    assert dropped.error.message.startswith("ServerDisconnectedError: ")
    assert (dropped.error.operation, dropped.error.status) == ("get database", None)
    assert clock.sleeps == []


# --- listing --------------------------------------------------------------------------------


def pages(script: dict[str | None, tuple[list[str], str | None]]) -> Callable[[Recorded], Reply]:
    """Answer a listing request from ``cursor -> (names, next cursor)``."""

    def answer(request: Recorded) -> Reply:
        names, following = script[request.query.get("cursor")]
        body = {
            "databases": [database(n)["database"] for n in names],
            "pagination": {"next": following},
        }
        return Reply(body=body)

    return answer


async def test_a_cursor_that_repeats_ends_the_listing(fake: ScriptedServer) -> None:
    fake.on("GET", DBS, pages({None: (["a"], "c1"), "c1": (["b"], "c1")}), repeat=True)
    async with client(fake) as api:
        found = (await api.list_databases()).unwrap()
    assert [d.name for d in found] == ["a", "b"]
    assert [r.query.get("cursor") for r in fake.requests] == [None, "c1"]


async def test_cursors_that_come_round_again_end_the_listing(fake: ScriptedServer) -> None:
    cycle = pages({None: (["a"], "c1"), "c1": (["b"], "c2"), "c2": (["c"], "c1")})

    def at_most_ten(request: Recorded) -> Reply:
        # A client that loops gets a last page after ten requests, so this test ends.
        return cycle(request) if len(fake.requests) < 10 else Reply(body={"databases": []})

    fake.on("GET", DBS, at_most_ten, repeat=True)
    async with client(fake) as api:
        found = (await api.list_databases()).unwrap()
    assert [d.name for d in found] == ["a", "b", "c"]
    assert [r.query.get("cursor") for r in fake.requests] == [None, "c1", "c2"]


async def test_names_repeated_across_pages_are_listed_once(fake: ScriptedServer) -> None:
    script = {None: (["a", "b"], "c1"), "c1": (["b", "c"], "c2"), "c2": (["a", "d"], None)}
    fake.on("GET", DBS, pages(script), repeat=True)
    async with client(fake) as api:
        names = [item.unwrap().name async for item in api.iter_databases(page_size=2)]
    assert names == ["a", "b", "c", "d"]
    assert [r.query for r in fake.requests] == [
        {"limit": "2"},
        {"limit": "2", "cursor": "c1"},
        {"limit": "2", "cursor": "c2"},
    ]


async def test_a_failed_page_ends_the_listing_with_its_error(fake: ScriptedServer) -> None:
    fake.on(
        "GET",
        DBS,
        pages({None: (["a"], "c1")}),
        Reply(status=404, body={"error": "no such org"}),
        Reply(body={"databases": "not a list"}),
    )
    async with client(fake) as api:
        items = [item async for item in api.iter_databases()]
        listed = await api.list_databases()
    assert items[0] == Ok(items[0].unwrap())
    assert items[1:] == [
        Err(NotFound(operation="list databases", status=404, message="no such org"))
    ]
    assert fake.requests[0].query == {"limit": "1000"}
    assert isinstance(listed, Err)
    assert isinstance(listed.error, InvalidResponse)
    assert len(fake.requests) == 3
