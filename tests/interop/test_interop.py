"""Clients and servers nobody here wrote, against ours (and ours against theirs).

Installed by ``bash .ci/install-interop``; each test skips with the reason when its
third-party part is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from libsql_client import LibsqlError

from per_user_db import Database, open_database

from ..conftest import LocalServer

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent
JS = HERE / "js"
NODE = shutil.which("node")
LIBSQL_CLIENT = JS / "node_modules" / "@libsql" / "client"
TURSODB = JS / "node_modules" / "@tursodatabase" / "cli-linux-x64-gnu" / "tursodb"


def skip_unless(condition: bool, reason: str) -> None:
    if not condition:
        pytest.skip(f"{reason}; run `bash .ci/install-interop`")


async def run_probe(command: list[str]) -> dict[str, object]:
    with anyio.fail_after(120):
        done = await anyio.run_process(command, check=False)
    out = done.stdout.decode()
    assert out.strip(), done.stderr.decode()[-2000:]
    report = json.loads(out)
    assert isinstance(report, dict)
    return report


def assert_probe_ok(report: dict[str, object]) -> None:
    failed = {
        "failed_checks": report.get("failed_checks"),
        "unexpected_errors": report.get("unexpected_errors"),
    }
    assert report["ok"] is True, failed
    checks = report["checks"]
    assert isinstance(checks, dict)
    assert checks, "the probe checked nothing"
    assert all(checks.values()), failed


async def test_libsql_client_for_node_against_our_server(server: LocalServer) -> None:
    skip_unless(NODE is not None and LIBSQL_CLIENT.is_dir(), "npm @libsql/client is not installed")
    assert NODE is not None
    url = await server.database("node")
    report = await run_probe([NODE, str(JS / "client_probe.mjs"), url + "/"])
    assert_probe_ok(report)
    summary = report["summary"]
    assert isinstance(summary, dict)
    # What it exercised on our server: v2 pipelines with batons and stored SQL.
    assert summary["sends_close"] is True
    assert summary["uses_batons"] is True
    assert server.state.counts.count(route="v2/pipeline") > 10


async def test_libsql_for_python_against_our_server(server: LocalServer) -> None:
    # libsql keeps the GIL while it waits on the network, so it runs in another process.
    skip_unless(importlib.util.find_spec("libsql") is not None, "PyPI libsql is not installed")
    url = await server.database("python")
    report = await run_probe([sys.executable, str(HERE / "libsql_py_probe.py"), url + "/"])
    assert_probe_ok(report)
    assert server.state.counts.count(route="v3/pipeline") > 5
    assert server.state.counts.count(route="v3/cursor") > 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def tursodb(tmp_path: Path) -> AsyncIterator[str]:
    skip_unless(
        TURSODB.is_file(), "tursodb (npm @tursodatabase/cli-linux-x64-gnu) is not installed"
    )
    port = free_port()
    process = await anyio.open_process(
        [str(TURSODB), "--sync-server", f"127.0.0.1:{port}", str(tmp_path / "turso.db")]
    )
    try:
        with anyio.fail_after(20):
            while True:  # it prints no "ready" line: wait for the port
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                except OSError:
                    await anyio.sleep(0.05)
                    continue
                await stream.aclose()
                break
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


async def open_tursodb(url: str) -> Database:
    # tursodb has no streams and rejects `close`; it serves /v2 only (our client falls
    # back from /v3 on the 404, once).
    return (await open_database(url, close_streams=False)).unwrap()


async def test_our_client_against_tursodb_execute(tursodb: str) -> None:
    async with await open_tursodb(tursodb) as db:
        await db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, f REAL, b BLOB)"
        )
        await db.execute(
            "INSERT INTO t (name, n, f, b) VALUES (?, ?, ?, ?)", ["ünï", 2**62, -0.5, b"\x00\xff"]
        )
        rs = await db.execute("SELECT name, n, f, b FROM t")
        assert rs.columns == ("name", "n", "f", "b")
        assert rs[0].astuple() == ("ünï", 2**62, -0.5, b"\x00\xff")
        assert not db.transport.supports_v3


async def test_our_client_against_tursodb_batch_is_atomic(tursodb: str) -> None:
    async with await open_tursodb(tursodb) as db:
        await db.execute("CREATE TABLE b (v TEXT NOT NULL)")
        await db.batch(["INSERT INTO b VALUES ('one')", "INSERT INTO b VALUES ('two')"])
        with pytest.raises(LibsqlError):
            await db.batch(["INSERT INTO b VALUES ('three')", "INSERT INTO b VALUES (NULL)"])
        rows = await db.execute("SELECT v FROM b ORDER BY v")
        assert [r[0] for r in rows] == ["one", "two"]
