"""The app's view: the FastAPI example under load, beside the ways it could reach a database.

    python -m bench.app [--requests 6000] [--seconds 60] [--connections 32] [--users 200]
                        [--writes 0.5]

Three processes, all on 127.0.0.1: the local Turso (``per_user_db.dev``, Platform API and
databases) in a child process that counts what reaches its databases; the app under
uvicorn in another child (``pip install 'per-user-db[bench]'``); and this process, a
bounded load generator (asyncio + aiohttp: ``--connections`` requests in flight, at most
``--requests`` requests and ``--seconds`` seconds per mode, ``--writes`` of them POSTs).
Three modes of the same HTTP API and the same SQL, each with its own ``--users`` users,
signed up (and one request each, to warm up) before the clock starts:

* ``UserDatabases``: ``examples/fastapi_app.py`` as it is (the app object, defaults);
* ``user_database()``: the old per-request scope, ``user_database(user_id, store=...)``;
* raw POST: the SQL as one aiohttp POST to the database's ``/v3/pipeline`` on a shared
  session, with each user's URL and token kept in a dict: the floor.

Per mode: requests/s, latency p50/p99, the app server's CPU per request (from /proc),
the HTTP requests its databases received per API call and the new TCP connections per
API call (client ports the database server had not seen before). Prints numbers and whether
the app object meets the targets of issue 14; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
import anyio
from aiohttp import web
from fastapi import FastAPI, Header, HTTPException

from bench._serve import cpu_seconds
from examples.fastapi_app import Program, SignUp, create_app
from per_user_db import (
    Credentials,
    InMemoryCredentialStore,
    Settings,
    setup_user_database,
    user_database,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "app": "UserDatabases (the example)",
    "scope": "user_database() per request",
    "raw": "raw aiohttp POST",
}
# The example's SQL (examples/fastapi_app.py), which every mode runs.
READ = "SELECT id, name FROM programs ORDER BY name"
WRITE = "INSERT INTO programs (id, name) VALUES (?, ?)"
CHILD_LIFETIME = 900.0  # seconds: no child outlives this, whatever happens to its parent
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


# --- child 1: the local Turso, counting what reaches its databases ------------------------


async def serve_turso(data: Path) -> None:
    from per_user_db.dev import create_local_turso_app, local_turso, serve

    app = create_local_turso_app(data, org="bench")
    db_requests = connections = 0
    ports: set[int] = set()  # every client port ever seen: a port not in it is a new connection

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        nonlocal db_requests, connections
        if request.path == "/_bench/stats":  # the benchmark asks, and restarts the count
            answer = {"db_requests": db_requests, "connections": connections}
            if request.query.get("reset"):
                db_requests = connections = 0
            return web.json_response(answer)
        if request.path.startswith("/db/"):
            db_requests += 1
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer and peer[1] not in ports:
                ports.add(peer[1])
                connections += 1
        return await handler(request)

    app.middlewares.insert(0, count)
    async with serve(app) as address:
        state = local_turso(app)
        print(json.dumps({"url": address.url, "token": state.api_token, "org": state.org}))
        sys.stdout.flush()
        await _until_stdin_closes()


async def _until_stdin_closes() -> None:
    """Wait for the parent to close our stdin (or for CHILD_LIFETIME to pass)."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()

    def watch() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(closed.set)

    threading.Thread(target=watch, daemon=True).start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(closed.wait(), CHILD_LIFETIME)


# --- child 2: the app under uvicorn -------------------------------------------------------


def serve_app(mode: str) -> None:
    uvicorn: Any = importlib.import_module("uvicorn")  # the bench extra; loaded by name
    app = {"app": create_app, "scope": scope_app, "raw": raw_app}[mode]()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)  # connections wait in the backlog until uvicorn accepts them
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", backlog=256)
    )

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        server.should_exit = True

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    deadline = threading.Timer(CHILD_LIFETIME, lambda: setattr(server, "should_exit", True))
    deadline.daemon = True
    deadline.start()
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    server.run(sockets=[listener])


def _settings() -> Settings:
    return Settings.from_env().unwrap()


def scope_app() -> FastAPI:
    """The example's API, written the way the README documented before UserDatabases."""
    store, settings = InMemoryCredentialStore(), _settings()
    app = FastAPI()

    @app.post("/signup", status_code=201)
    async def signup(body: SignUp) -> dict[str, str]:
        done = await setup_user_database(body.user_id, store=store, settings=settings)
        return {"database": done.unwrap().name}

    @app.get("/me/programs")
    async def programs(x_user_id: Annotated[str, Header()]) -> list[Program]:
        async with user_database(x_user_id, store=store, settings=settings) as db:
            return await db.fetch(READ, into=Program)

    @app.post("/me/programs", status_code=201)
    async def add(program: Program, x_user_id: Annotated[str, Header()]) -> Program:
        async with user_database(x_user_id, store=store, settings=settings) as db:
            await db.execute(WRITE, [program.id, program.name])
        return program

    return app


def raw_app() -> FastAPI:
    """The example's API as raw Hrana POSTs on one session: what the library must approach."""
    store, settings = InMemoryCredentialStore(), _settings()
    reach: dict[str, tuple[str, str]] = {}  # user id -> (pipeline URL, Authorization)
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
            sessions.append(session)
            yield

    app = FastAPI(lifespan=lifespan)

    async def execute(user_id: str, sql: str, args: list[str]) -> list[list[Any]]:
        if user_id not in reach:
            raise HTTPException(status_code=404, detail="no database for this user")
        url, authorization = reach[user_id]
        stmt = {"sql": sql, "args": [{"type": "text", "value": a} for a in args]}
        body = {"baton": None, "requests": [{"type": "execute", "stmt": stmt}, {"type": "close"}]}
        async with sessions[0].post(url, json=body, headers={"Authorization": authorization}) as r:
            if r.status != 200:
                raise HTTPException(status_code=503, detail=f"the database answered {r.status}")
            answer = await r.json()
        result = answer["results"][0]
        if result["type"] != "ok":
            raise HTTPException(status_code=400, detail=result["error"]["message"])
        rows: list[list[Any]] = result["response"]["result"]["rows"]
        return rows

    @app.post("/signup", status_code=201)
    async def signup(body: SignUp) -> dict[str, str]:
        done = (await setup_user_database(body.user_id, store=store, settings=settings)).unwrap()
        reach[body.user_id] = (_pipeline_url(done), f"Bearer {done.auth_token}")
        return {"database": done.name}

    @app.get("/me/programs")
    async def programs(x_user_id: Annotated[str, Header()]) -> list[Program]:
        rows = await execute(x_user_id, READ, [])
        return [Program(id=row[0]["value"], name=row[1]["value"]) for row in rows]

    @app.post("/me/programs", status_code=201)
    async def add(program: Program, x_user_id: Annotated[str, Header()]) -> Program:
        await execute(x_user_id, WRITE, [program.id, program.name])
        return program

    return app


def _pipeline_url(credentials: Credentials) -> str:
    # libsql://127.0.0.1:PORT/db/NAME/?tls=0, as the local Turso hands it out
    rest = credentials.url.removeprefix("libsql://").removesuffix("?tls=0")
    return f"http://{rest}v3/pipeline"


# --- the parent: processes, load, numbers --------------------------------------------------


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """Start ``python -m bench.app ARGS``; yield its first line of output and its pid.
    Closing its stdin stops it (and CHILD_LIFETIME bounds it if this process dies)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.app", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"bench.app {' '.join(args)} did not start")
        yield line, process.pid
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    requests: int
    errors: int
    wall: float
    latencies_ms: list[float]

    def percentile(self, q: float) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[round(q) - 1]


async def load(
    base: str,
    users: list[str],
    *,
    requests: int,
    seconds: float,
    connections: int,
    writes: float,
    seed: int,
    in_turn: bool = False,
) -> Run:
    """At most ``requests`` requests in at most ``seconds``, ``connections`` at a time,
    each for a random user (or for each user in turn)."""
    rng = random.Random(seed)
    ids = itertools.count()
    latencies: list[float] = []
    issued = errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as http:

        async def worker() -> None:
            nonlocal issued, errors
            while issued < requests and time.perf_counter() < deadline:
                user = users[issued % len(users)] if in_turn else rng.choice(users)
                issued += 1
                headers = {"X-User-Id": user}
                if rng.random() < writes:
                    n = next(ids)
                    program = {"id": f"p{seed}-{n}", "name": f"Program {n}"}
                    call = http.post(f"{base}/me/programs", json=program, headers=headers)
                else:
                    call = http.get(f"{base}/me/programs", headers=headers)
                started = time.perf_counter()
                try:
                    async with call as response:
                        await response.read()
                        errors += response.status >= 300
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(connections):
                group.start_soon(worker)
        wall = time.perf_counter() - started
    return Run(requests=len(latencies), errors=errors, wall=wall, latencies_ms=latencies)


async def sign_up(base: str, users: list[str]) -> None:
    limiter = anyio.CapacityLimiter(16)
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:

        async def one(user: str) -> None:
            async with limiter, http.post(f"{base}/signup", json={"user_id": user}) as r:
                if r.status != 201:
                    raise RuntimeError(f"sign-up of {user} failed: {r.status} {await r.text()}")

        async with anyio.create_task_group() as group:
            for user in users:
                group.start_soon(one, user)


async def stats(turso: str, *, reset: bool = False) -> dict[str, int]:
    async with (
        aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http,
        http.get(f"{turso}/_bench/stats", params={"reset": "1"} if reset else {}) as r,
    ):
        answer: dict[str, int] = await r.json()
        return answer


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    mode: str
    run: Run
    app_cpu_ms: float
    db_requests: float
    connections: float

    @property
    def rate(self) -> float:
        return self.run.requests / self.run.wall


async def measure(mode: str, turso: str, env: dict[str, str], args: argparse.Namespace) -> Row:
    users = [f"{mode}-user-{n}" for n in range(args.users)]
    with child(["--serve-app", mode], env) as (base, pid):
        await sign_up(base, users)
        # Warm up outside the numbers: each user's first request, on as many connections
        # as the measured run will use (so pools are full, as in a server's steady state).
        await load(
            base,
            users,
            requests=len(users),
            seconds=args.seconds,
            connections=args.connections,
            writes=0,
            seed=0,
            in_turn=True,
        )
        await stats(turso, reset=True)
        cpu = cpu_seconds(pid)
        run = await load(
            base,
            users,
            requests=args.requests,
            seconds=args.seconds,
            connections=args.connections,
            writes=args.writes,
            seed=args.seed,
        )
        cpu = cpu_seconds(pid) - cpu
        counted = await stats(turso)
    calls = max(run.requests, 1)
    return Row(
        mode=mode,
        run=run,
        app_cpu_ms=cpu * 1000 / calls,
        db_requests=counted["db_requests"] / calls,
        connections=counted["connections"] / calls,
    )


def report(rows: list[Row]) -> None:
    print(
        f"{'mode':<30} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'app CPU ms/req':>14} {'DB req/call':>11} {'new TCP/call':>12}"
    )
    for row in rows:
        print(
            f"{MODES[row.mode]:<30} {row.run.requests:>8} {row.run.errors:>6} {row.rate:>7.0f} "
            f"{row.run.percentile(50):>7.1f} {row.run.percentile(99):>7.1f} "
            f"{row.app_cpu_ms:>14.2f} {row.db_requests:>11.2f} {row.connections:>12.3f}"
        )
    by_mode = {row.mode: row for row in rows}
    app, raw = by_mode.get("app"), by_mode.get("raw")
    if app is None or raw is None:
        return
    ratio, cpu = app.rate / raw.rate, app.app_cpu_ms - raw.app_cpu_ms
    checks = [
        (f"req/s {ratio:.2f}x the raw POST's (target >= 0.9x)", ratio >= 0.9),
        (f"{app.db_requests:.2f} database requests per call (target 1)", app.db_requests < 1.005),
        (f"{app.connections:.3f} new TCP connections per call (target ~0)", app.connections < 0.01),
        (f"app CPU {cpu:+.2f} ms per call beside the raw POST (target <= +0.3)", cpu <= 0.3),
    ]
    print("UserDatabases against the targets of issue 14:")
    for text, met in checks:
        print(f"  {'met   ' if met else 'MISSED'} {text}")


async def main(args: argparse.Namespace) -> None:
    if importlib.util.find_spec("uvicorn") is None:
        sys.exit("bench.app serves the app with uvicorn: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory() as tmp, child(["--serve-turso", tmp]) as (line, _):
        turso = json.loads(line)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TURSO_", "PER_USER_DB_", "APP_ENV"))
        }
        env |= {
            "TURSO_API_URL": turso["url"],
            "TURSO_PLATFORM_API_TOKEN": turso["token"],
            "TURSO_ORGANIZATION": turso["org"],
            "APP_ENV": "bench",
        }
        print(
            f"{args.requests} requests per mode (at most {args.seconds:.0f} s), "
            f"{args.connections} connections, {args.writes:.0%} writes, {args.users} users; "
            "app under uvicorn, local Turso, load generator: three processes on 127.0.0.1"
        )
        rows = []
        for mode in MODES:
            rows.append(await measure(mode, turso["url"], env, args))
        report(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--writes", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--serve-turso", metavar="DATA_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--serve-app", choices=MODES, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_turso:
        asyncio.run(serve_turso(Path(parsed.serve_turso)))
    elif parsed.serve_app:
        serve_app(parsed.serve_app)
    else:
        asyncio.run(main(parsed))
