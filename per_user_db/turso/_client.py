"""The Platform API client: every HTTP call to api.turso.tech lives in this file.

One ``aiohttp.ClientSession`` per client (``async with`` closes it); a deadline on every
request; 429, 5xx, connection errors and timeouts retried with exponential backoff and
full jitter, honouring ``Retry-After``, bounded by an attempt count and a total
deadline; other 4xx never retried. Every failure is a typed value from
:mod:`per_user_db.core._platform`; aiohttp's exceptions stop here. The API token only
ever travels in the ``Authorization`` header.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import aiohttp
import anyio

from ..core._errors import error_body_text
from ..core._platform import (
    DatabaseInfo,
    GroupInfo,
    InvalidResponse,
    NetworkError,
    NotFound,
    PlanInfo,
    PlatformError,
    Timeout,
    UsageInfo,
    backoff_delay,
    error_for_status,
    parse_database,
    parse_database_list,
    parse_group,
    parse_plans,
    parse_token,
    parse_usage,
    retry_after_seconds,
)
from ..core._result import Err, Ok, Result

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from types import TracebackType

__all__ = ["DEFAULT_API_URL", "PlatformClient", "RetryPolicy"]

DEFAULT_API_URL = "https://api.turso.tech"
log = logging.getLogger("per_user_db")

Authorization = Literal["full-access", "read-only"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try: at most ``attempts`` tries within ``deadline`` seconds in all."""

    attempts: int = 5
    deadline: float = 30.0
    base_delay: float = 0.2
    max_delay: float = 5.0
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.deadline <= 0 or self.request_timeout <= 0:
            raise ValueError("attempts, deadline and request_timeout must be positive")


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class PlatformClient:
    """A client for one organization. Use ``async with PlatformClient(...) as api:``."""

    def __init__(
        self,
        *,
        api_token: str,
        organization: str,
        api_url: str = DEFAULT_API_URL,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """``rng``, ``clock`` (wall time, for ``Retry-After`` dates), ``monotonic`` (the
        retry deadline) and ``sleep`` (the waits between attempts) default to the real
        ones; tests pass their own to check the waits without spending them."""
        if not api_token or not organization:
            raise ValueError("api_token and organization are required")
        self._token = api_token
        self._organization = organization
        self._api_url = api_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self._session = session
        self._owns_session = session is None
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._monotonic = monotonic or time.monotonic
        self._sleep = sleep or anyio.sleep
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"<PlatformClient {self._api_url} org={self._organization}>"

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def organization(self) -> str:
        return self._organization

    def _org_path(self, *parts: str) -> str:
        tail = "/".join(_quote(p) for p in parts)
        return f"/v1/organizations/{_quote(self._organization)}/{tail}"

    # --- one request, with retries --------------------------------------------------------

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: object | None,
        within: float,
    ) -> tuple[int, bytes, str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.requests_sent += 1
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        async with self._session.request(
            method,
            self._api_url + path,
            params=params,
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=within),
        ) as response:
            return response.status, await response.read(), response.headers.get("Retry-After")

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: object | None = None,
    ) -> Result[tuple[int, object], PlatformError]:
        """Send with retries; ``Ok((status, json_body))`` for 2xx, else the typed error."""
        started = self._monotonic()
        error: PlatformError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            # No attempt may run past the total deadline.
            remaining = self._retry.deadline - (self._monotonic() - started)
            timeout = min(self._retry.request_timeout, max(remaining, 0.001))
            try:
                status, payload, retry_after = await self._once(method, path, params, body, timeout)
            except TimeoutError:
                error = Timeout(
                    operation=operation, status=None, message=f"no answer within {timeout:.3g} s"
                )
            except aiohttp.ClientError as exc:
                error = NetworkError(
                    operation=operation, status=None, message=f"{type(exc).__name__}: {exc}"
                )
            else:
                if 200 <= status < 300:
                    if not payload.strip():
                        return Ok((status, None))
                    try:
                        return Ok((status, json.loads(payload)))
                    except ValueError:
                        return Err(
                            InvalidResponse(
                                operation=operation, status=status, message="the body is not JSON"
                            )
                        )
                wait = retry_after_seconds(retry_after, now=self._clock())
                message, _ = error_body_text(payload)
                error = error_for_status(status, message, operation, retry_after=wait)
            if not error.retryable or attempt == self._retry.attempts:
                return Err(error)
            delay = backoff_delay(
                attempt,
                base=self._retry.base_delay,
                cap=self._retry.max_delay,
                unit=self._rng.random(),
            )
            if error.retry_after is not None:
                delay = max(delay, error.retry_after)
            remaining = self._retry.deadline - (self._monotonic() - started)
            if delay >= remaining:
                return Err(error)
            log.debug("%s failed (%s); retry %d in %.2f s", operation, error, attempt, delay)
            await self._sleep(delay)
        assert error is not None  # the loop returns on its last attempt
        return Err(error)

    # --- operations ------------------------------------------------------------------------

    async def create_database(
        self, name: str, *, group: str = "default"
    ) -> Result[DatabaseInfo, PlatformError]:
        match await self._request(
            "create database",
            "POST",
            self._org_path("databases"),
            body={"name": name, "group": group},
        ):
            case Ok((_, body)):
                return parse_database(body, "create database")
            case Err() as failed:
                return failed

    async def get_database(self, name: str) -> Result[DatabaseInfo, PlatformError]:
        match await self._request("get database", "GET", self._org_path("databases", name)):
            case Ok((_, body)):
                return parse_database(body, "get database")
            case Err() as failed:
                return failed

    async def iter_databases(
        self, *, group: str | None = None, prefix: str | None = None, page_size: int = 1000
    ) -> AsyncIterator[Result[DatabaseInfo, PlatformError]]:
        """Every database (following ``pagination.next`` when the API sends it), optionally
        only those of ``group`` and whose name starts with ``prefix``; an ``Err`` ends it."""
        cursor: str | None = None
        seen: set[str] = set()
        # A cursor the API sends again would list the same pages forever: stop at it.
        followed: set[str] = set()
        while True:
            params = {"limit": str(page_size)}
            if group:
                params["group"] = group
            if cursor:
                params["cursor"] = cursor
            match await self._request(
                "list databases", "GET", self._org_path("databases"), params=params
            ):
                case Err() as failed:
                    yield failed
                    return
                case Ok((_, body)):
                    parsed = parse_database_list(body, "list databases")
            match parsed:
                case Err() as failed:
                    yield failed
                    return
                case Ok((page, next_cursor)):
                    pass
            for info in page:
                if info.name in seen:
                    continue
                seen.add(info.name)
                if prefix is None or info.name.startswith(prefix):
                    yield Ok(info)
            if not next_cursor or next_cursor in followed:
                return
            followed.add(next_cursor)
            cursor = next_cursor

    async def list_databases(
        self, *, group: str | None = None, prefix: str | None = None
    ) -> Result[list[DatabaseInfo], PlatformError]:
        found: list[DatabaseInfo] = []
        async for item in self.iter_databases(group=group, prefix=prefix):
            match item:
                case Ok(info):
                    found.append(info)
                case Err() as failed:
                    return failed
        return Ok(found)

    async def delete_database(self, name: str) -> Result[bool, PlatformError]:
        """``Ok(True)`` if deleted now, ``Ok(False)`` if it was already gone (404)."""
        match await self._request("delete database", "DELETE", self._org_path("databases", name)):
            case Ok(_):
                return Ok(True)
            case Err(NotFound()):
                return Ok(False)
            case Err() as failed:
                return failed

    async def create_token(
        self,
        name: str,
        *,
        expires_in_days: int | None = 30,
        authorization: Authorization = "full-access",
    ) -> Result[str, PlatformError]:
        """A database token: ``expires_in_days=None`` never expires."""
        if expires_in_days is not None and expires_in_days < 1:
            raise ValueError("expires_in_days must be at least 1, or None for never")
        expiration = "never" if expires_in_days is None else f"{expires_in_days}d"
        match await self._request(
            "create database token",
            "POST",
            self._org_path("databases", name, "auth", "tokens"),
            params={"expiration": expiration, "authorization": authorization},
        ):
            case Ok((_, body)):
                return parse_token(body, "create database token")
            case Err() as failed:
                return failed

    async def invalidate_tokens(self, name: str) -> Result[None, PlatformError]:
        """Invalidate every token of database ``name`` (Turso cannot revoke just one)."""
        match await self._request(
            "invalidate database tokens",
            "POST",
            self._org_path("databases", name, "auth", "rotate"),
        ):
            case Ok(_):
                return Ok(None)
            case Err() as failed:
                return failed

    async def get_group(self, name: str) -> Result[GroupInfo, PlatformError]:
        match await self._request("get group", "GET", self._org_path("groups", name)):
            case Ok((_, body)):
                return parse_group(body, "get group")
            case Err() as failed:
                return failed

    async def validate_token(self) -> Result[int | None, PlatformError]:
        """``Ok(exp)`` of the API token (Unix seconds; None: no expiry) if it is valid."""
        match await self._request("validate API token", "GET", "/v1/auth/validate"):
            case Ok((_, body)):
                exp = body.get("exp") if isinstance(body, dict) else None
                if not isinstance(exp, int) or isinstance(exp, bool):
                    return _invalid("validate API token", "expected {'exp': <int>}")
                return Ok(None if exp < 0 else exp)
            case Err() as failed:
                return failed

    async def plans(self) -> Result[list[PlanInfo], PlatformError]:
        match await self._request("list plans", "GET", self._org_path("plans")):
            case Ok((_, body)):
                return parse_plans(body, "list plans")
            case Err() as failed:
                return failed

    async def usage(self) -> Result[UsageInfo, PlatformError]:
        match await self._request("get usage", "GET", self._org_path("usage")):
            case Ok((_, body)):
                return parse_usage(body, "get usage")
            case Err() as failed:
                return failed


def _invalid(operation: str, message: str) -> Err[PlatformError]:
    return Err(InvalidResponse(operation=operation, status=200, message=message))
