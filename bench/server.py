"""The local Turso's SQL side under load, beside tursodb: prints numbers, asserts nothing.

    python -m bench.server [--seconds 5] [--connections 64 1] [--generator auto|wrk|python]

One-shot ``SELECT 1`` pipelines (``execute`` + ``close``, what every client sends for a
plain query) over kept-alive HTTP/1.1 connections to 127.0.0.1. The load comes from
``wrk`` when it is installed (``apt-get install wrk``: C, a small share of the 2 cores
the server also needs), else from a generator of its own (raw asyncio streams with the
request bytes built once; Python, so it takes about a core itself). Each run is bounded
in time. Printed per server and connection count: requests/s, p50 and p99 latency,
errors, and the server's CPU seconds; then the ratio of ours to tursodb's.

The servers, each in a child process: ``per-user-db dev --db`` (one file, no tokens);
the local Turso with a database token (every request checks it, as Turso does); and
``tursodb --sync-server`` when ``bash .ci/install-interop`` installed it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench._serve import cpu_seconds
from per_user_db.core._hrana import CloseRequest, ExecuteRequest, Stmt, encode_pipeline_request

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
TURSODB = ROOT / "tests/interop/js/node_modules/@tursodatabase/cli-linux-x64-gnu/tursodb"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Target:
    """One server's request: where to send it, and what."""

    port: int
    path: str
    body: bytes
    token: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request_bytes(self) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers().items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def select_one(*, close_stream: bool) -> bytes:
    requests = [ExecuteRequest(stmt=Stmt(sql="SELECT 1"))]
    return encode_pipeline_request(None, [*requests, *([CloseRequest()] if close_stream else [])])


async def one_connection(
    port: int, payload: bytes, until: float, latencies: list[float], errors: list[str]
) -> None:
    """Requests back to back on one connection, opening a new one whenever the server
    closes it (a server without keep-alive pays for that in its numbers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
                length, closing = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    elif name.lower() == b"connection" and b"close" in value.lower():
                        closing = True
                await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
                closing = True
            else:
                latencies.append(time.perf_counter() - started)
                if head[9:12] != b"200":
                    errors.append(head[9:12].decode())
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass(frozen=True, slots=True)
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


async def python_load(target: Target, connections: int, seconds: float) -> Run:
    latencies: list[float] = []
    errors: list[str] = []
    port, payload = target.port, target.request_bytes()
    await one_connection(port, payload, time.perf_counter() + 0.3, [], [])  # warm up
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(one_connection(port, payload, until, latencies, errors) for _ in range(connections))
    )
    rate = len(latencies) / (time.perf_counter() - started)
    ordered = sorted(latencies) or [0.0]
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(0.99 * (len(ordered) - 1))] * 1000
    return Run(rate=rate, p50_ms=p50, p99_ms=p99, errors=len(errors))


_WRK_TIME = re.compile(r"^\s*(50|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


async def wrk_load(wrk: str, target: Target, connections: int, seconds: float) -> Run:
    script = "\n".join(
        [
            'wrk.method = "POST"',
            f"wrk.body = {lua_string(target.body)}",
            *(
                f"wrk.headers[{lua_string(k)}] = {lua_string(v)}"
                for k, v in target.headers().items()
            ),
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        url = f"http://127.0.0.1:{target.port}{target.path}"
        threads = str(min(2, connections))
        for duration in ("1s", f"{seconds:g}s"):  # the first is the warm-up
            done = await asyncio.create_subprocess_exec(
                wrk, "-t", threads, "-c", str(connections), "-d", duration, "--latency",
                "-s", lua.name, url, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out = (await done.communicate())[0].decode()
    times = {m[1]: float(m[2]) * _WRK_UNITS[m[3]] for m in _WRK_TIME.finditer(out)}
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx[1]) if non_2xx else 0
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return Run(
        rate=float(rate[1]) if rate else 0.0,
        p50_ms=times.get("50", 0.0),
        p99_ms=times.get("99", 0.0),
        errors=errors,
    )


def lua_string(text: str | bytes) -> str:
    raw = text.decode() if isinstance(text, bytes) else text
    return '"' + raw.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def running(command: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{command[0]} did not start listening on {port}")
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextlib.contextmanager
def local_turso_database(folder: Path) -> Iterator[tuple[Target, int]]:
    """The local Turso with one database, and a token for it."""
    port = free_port()
    api_token = "bench-api-token"
    command = [sys.executable, "-m", "per_user_db.dev", "--data-dir", str(folder / "turso")]
    command += ["--port", str(port), "--api-token", api_token]
    with running(command, port) as child:
        api = f"http://127.0.0.1:{port}/v1/organizations/local/databases"
        headers = {"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"}
        create = urllib.request.Request(
            api, data=json.dumps({"name": "bench", "group": "default"}).encode(), headers=headers
        )
        urllib.request.urlopen(create, timeout=10).close()  # loopback, ours
        mint = urllib.request.Request(f"{api}/bench/auth/tokens", data=b"", headers=headers)
        with urllib.request.urlopen(mint, timeout=10) as answer:
            token = json.loads(answer.read())["jwt"]
        body = select_one(close_stream=True)
        yield Target(port=port, path="/db/bench/v3/pipeline", body=body, token=token), child.pid


@contextlib.contextmanager
def targets(folder: Path, name: str) -> Iterator[tuple[Target, int] | None]:
    """The server ``name`` running, its request, and its process id."""
    if name == OURS:
        port = free_port()
        command = [sys.executable, "-m", "per_user_db.dev", "--db", str(folder / "ours.db")]
        with running([*command, "--port", str(port)], port) as child:
            body = select_one(close_stream=True)
            yield Target(port=port, path="/v3/pipeline", body=body), child.pid
    elif name == OURS_WITH_TOKENS:
        with local_turso_database(folder) as served:
            yield served
    elif TURSODB.exists():
        port = free_port()
        turso = [str(TURSODB), "--sync-server", f"127.0.0.1:{port}", str(folder / "turso.db")]
        with running(turso, port) as child:
            # tursodb serves /v2 only, has no streams and rejects 'close'.
            body = select_one(close_stream=False)
            yield Target(port=port, path="/v2/pipeline", body=body), child.pid
    else:
        yield None


OURS = "per-user-db dev --db"
OURS_WITH_TOKENS = "local Turso, token"
TURSO = "tursodb --sync-server"


async def main(seconds: float, counts: list[int], generator: str) -> None:
    wrk = shutil.which("wrk") if generator in ("auto", "wrk") else None
    if generator == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    print(f"load generator: {'wrk' if wrk else 'python (asyncio streams)'}")
    rates: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'server':<24} {'conns':>5} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'errors':>6} {'server CPU s':>12}")  # fmt: skip
        for name in (OURS, OURS_WITH_TOKENS, TURSO):
            with targets(Path(tmp), name) as served:
                if served is None:
                    print(f"{name}: not installed (bash .ci/install-interop)")
                    continue
                target, pid = served
                for connections in counts:
                    cpu = cpu_seconds(pid)
                    if wrk is not None:
                        run = await wrk_load(wrk, target, connections, seconds)
                    else:
                        run = await python_load(target, connections, seconds)
                    used = cpu_seconds(pid) - cpu
                    rates[(name, connections)] = run.rate
                    print(f"{name:<24} {connections:>5} {run.rate:>9,.0f} {run.p50_ms:>7.2f} "
                          f"{run.p99_ms:>7.2f} {run.errors:>6} {used:>12.2f}")  # fmt: skip
        for connections in counts:
            ours = rates.get((OURS, connections))
            theirs = rates.get((TURSO, connections))
            if ours and theirs:
                print(f"ratio at {connections} connections: {ours / theirs:.2f} of tursodb")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.connections, args.generator))
