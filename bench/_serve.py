"""Run the local protocol server in its own process for a benchmark.

    python -m bench._serve DATA_DIR [--latency-ms N] [--database NAME ...]

Prints the server's base URL on one line, then serves until its standard input closes
(the benchmark that started it ends), so no server outlives its benchmark.
``GET /_bench/posts`` answers how many pipeline and cursor requests it has served. Running the
server in another process keeps its CPU out of the client's numbers, as a real server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from per_user_db.dev import Faults, create_protocol_app, protocol_state, serve
from per_user_db.dev._faults import fault_middleware
from per_user_db.dev._server import SQL_LATENCY

if TYPE_CHECKING:
    from collections.abc import Iterator


async def main(data: Path, latency: float, names: list[str]) -> None:
    app = create_protocol_app(data)
    state = protocol_state(app)

    async def posts(request: web.Request) -> web.Response:
        # What the SQL routes counted: every pipeline and cursor request.
        routes = state.counts.by_route()
        served = sum(n for route, n in routes.items() if route.endswith(("pipeline", "cursor")))
        return web.Response(text=str(served))

    app.router.add_get("/_bench/posts", posts)
    if latency:
        # The local Turso's own --latency: aiohttp's routes through the middleware, the
        # pipeline routes (read by the front door) through SQL_LATENCY.
        app.middlewares.insert(0, fault_middleware(Faults(latency=latency)))
        app[SQL_LATENCY] = lambda: latency
    for name in names:
        await protocol_state(app).create_database(name)
    async with serve(app) as address:
        print(address.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.contextmanager
def server_process(
    data: Path, *, latency_ms: float = 0.0, databases: tuple[str, ...] = ("bench",)
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start the server in a child process; yield its base URL and the process."""
    command = [sys.executable, "-m", "bench._serve", str(data), "--latency-ms", str(latency_ms)]
    for name in databases:
        command += ["--database", name]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url:
            raise RuntimeError("the benchmark server did not start")
        yield url, child
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--database", action="append", default=[])
    args = parser.parse_args()
    asyncio.run(main(args.data, args.latency_ms / 1000, args.database))
