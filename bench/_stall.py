"""Measure how long the event loop stalls while a slow query runs (shared by the test and
the benchmark)."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TICK = 0.005


def slow_query_sql(rows: int) -> str:
    return (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        f"WHERE x < {rows}) SELECT count(*) FROM c"
    )


def rows_for(seconds: float) -> int:
    """How many recursive rows take about ``seconds`` on this machine (runs in a thread)."""
    probe = 200_000
    conn = sqlite3.connect(":memory:")
    try:
        started = time.perf_counter()
        conn.execute(slow_query_sql(probe)).fetchall()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return max(probe, int(probe * seconds / max(elapsed, 1e-6)))


async def max_stall(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Run ``work`` while a ticker sleeps ``TICK`` at a time; return (largest gap between
    ticks beyond TICK, duration of work), both in seconds."""
    worst = 0.0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(TICK)
            now = time.perf_counter()
            worst = max(worst, now - last - TICK)
            last = now

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await anyio.sleep(TICK * 2)  # let the ticker take its first step
        try:
            await work()
        finally:
            done.set()
    return worst, time.perf_counter() - started


async def least_stall(
    work: Callable[[], Awaitable[object]], *, attempts: int = 3, good_enough: float = 0.05
) -> tuple[float, float]:
    """The smallest :func:`max_stall` over up to ``attempts`` runs, stopping at the first
    under ``good_enough``. Work that blocks the loop stalls it on every run; a busy machine
    preempting the process does not do so three times in a row at the same moment."""
    best = (float("inf"), 0.0)
    for _ in range(attempts):
        best = min(best, await max_stall(work))
        if best[0] < good_enough:
            break
    return best
