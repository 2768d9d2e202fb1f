"""The local Turso's SQL side under load, beside tursodb: prints numbers, asserts nothing.

    python -m bench.server [--seconds 5] [--connections 64 1]

One-shot ``SELECT 1`` pipelines (``execute`` + ``close``, what every client sends for a
plain query) over kept-alive HTTP/1.1 connections to 127.0.0.1, from a load generator of
its own: raw asyncio streams with the request bytes built once, so the generator costs
the machine as little as it can (it shares the 2 cores with the server). Each run is
bounded in time. Printed per server and connection count: requests/s, p50 and p99
latency, errors, and the server's CPU seconds; then the ratio of ours to tursodb's.

The servers: ``per-user-db dev --db`` (one file, no tokens) in a child process, and
``tursodb --sync-server`` when ``bash .ci/install-interop`` installed it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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


def request_bytes(port: int, *, close_stream: bool, path: str) -> bytes:
    requests = [ExecuteRequest(stmt=Stmt(sql="SELECT 1"))]
    body = encode_pipeline_request(None, [*requests, *([CloseRequest()] if close_stream else [])])
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


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


async def load(
    port: int, payload: bytes, connections: int, seconds: float
) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    await one_connection(port, payload, time.perf_counter() + 0.3, [], [])  # warm up
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(one_connection(port, payload, until, latencies, errors) for _ in range(connections))
    )
    return len(latencies) / (time.perf_counter() - started), latencies, errors


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


def servers(folder: Path) -> Iterator[tuple[str, list[str], int, bytes]]:
    port = free_port()
    ours = [sys.executable, "-m", "per_user_db.dev", "--db", str(folder / "ours.db")]
    payload = request_bytes(port, close_stream=True, path="/v3/pipeline")
    yield "per-user-db dev", [*ours, "--port", str(port)], port, payload
    if TURSODB.exists():
        port = free_port()
        turso = [str(TURSODB), "--sync-server", f"127.0.0.1:{port}", str(folder / "turso.db")]
        # tursodb serves /v2 only, has no streams and rejects 'close'.
        payload = request_bytes(port, close_stream=False, path="/v2/pipeline")
        yield "tursodb --sync-server", turso, port, payload


async def main(seconds: float, counts: list[int]) -> None:
    rates: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'server':<24} {'conns':>5} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'errors':>6} {'server CPU s':>12}")  # fmt: skip
        for name, command, port, payload in servers(Path(tmp)):
            with running(command, port) as child:
                for connections in counts:
                    cpu = cpu_seconds(child.pid)
                    rate, latencies, errors = await load(port, payload, connections, seconds)
                    used = cpu_seconds(child.pid) - cpu
                    ordered = sorted(latencies) or [0.0]
                    p50 = statistics.median(ordered) * 1000
                    p99 = ordered[int(0.99 * (len(ordered) - 1))] * 1000
                    rates[(name, connections)] = rate
                    print(f"{name:<24} {connections:>5} {rate:>9,.0f} {p50:>7.2f} {p99:>7.2f} "
                          f"{len(errors):>6} {used:>12.2f}")  # fmt: skip
        for connections in counts:
            ours = rates.get(("per-user-db dev", connections))
            theirs = rates.get(("tursodb --sync-server", connections))
            if ours and theirs:
                print(f"ratio at {connections} connections: {ours / theirs:.2f} of tursodb")
        if not TURSODB.exists():
            print("tursodb: not installed (bash .ci/install-interop)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 1])
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.connections))
