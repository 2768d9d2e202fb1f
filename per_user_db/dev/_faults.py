"""Latency and injected failures, so clients can be tested against a flaky cloud.

``latency`` delays every request (Platform API and SQL alike). ``fail_rate`` answers
that fraction of Platform API requests with a 500, 503 or 429 *instead of* running
them: the dice are thrown before the handler, so a request answered with a fault never
changed anything and a client may always retry it. A 429 carries ``Retry-After``,
either in seconds or as an HTTP-date, since clients must understand both.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from per_user_db.dev._front import front_door_safe

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiohttp.typedefs import Middleware

__all__ = ["FAULT_STATUSES", "Faults", "fault_middleware", "is_platform_path"]

FAULT_STATUSES = (500, 503, 429)

_MESSAGES = {
    500: "internal error (injected by --fail-rate); the request was not executed",
    503: "service unavailable (injected by --fail-rate); the request was not executed",
    429: "rate limited (injected by --fail-rate); retry after the Retry-After delay",
}


def is_platform_path(path: str) -> bool:
    return path.startswith(("/v1/", "/v2/"))


@dataclass(slots=True, kw_only=True)
class Faults:
    """How slow and how unreliable the server pretends to be; counts what it injected."""

    latency: float = 0.0
    """Seconds added to every request."""
    fail_rate: float = 0.0
    """Fraction (0..1) of Platform API requests answered with a fault."""
    seed: int | None = None
    injected: collections.Counter[int] = field(default_factory=collections.Counter)
    # Not for cryptography: a seeded generator makes a test's faults reproducible.
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {self.latency}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, got {self.fail_rate}")
        self._rng = random.Random(self.seed)  # noqa: S311

    def draw(self) -> web.Response | None:
        """The fault to answer the next Platform request with, or None to run it."""
        if self.fail_rate == 0.0 or self._rng.random() >= self.fail_rate:
            return None
        status = self._rng.choice(FAULT_STATUSES)
        self.injected[status] += 1
        headers: dict[str, str] = {}
        if status == 429:
            if self._rng.random() < 0.5:
                headers["Retry-After"] = "1"
            else:
                # HTTP-dates have whole seconds: +2 keeps the wait at least one second.
                headers["Retry-After"] = email.utils.formatdate(time.time() + 2, usegmt=True)
        return web.json_response({"error": _MESSAGES[status]}, status=status, headers=headers)


def fault_middleware(faults: Faults) -> Middleware:
    # The front door applies the latency to the pipeline routes itself (SQL_LATENCY),
    # and faults are only ever drawn for the Platform API.
    @front_door_safe
    @web.middleware
    async def delay_and_fail(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        if is_platform_path(request.path):
            fault = faults.draw()
            if fault is not None:
                return fault
        return await handler(request)

    return delay_and_fail
