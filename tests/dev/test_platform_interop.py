"""Turso's official Platform API client (npm ``@tursodatabase/api``) against the local Turso."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from per_user_db.dev import create_local_turso_app, local_turso, serve

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js"
PROBE = JS_DIR / "platform_probe.mjs"
TOKEN = "interop-api-token"


@pytest.fixture
def node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (needed for the @tursodatabase/api probe)")
    if not (JS_DIR / "node_modules" / "@tursodatabase" / "api").is_dir():
        pytest.skip(
            "@tursodatabase/api is not installed in tests/interop/js "
            "(add it to package.json and run .ci/install-interop)"
        )
    return node


@pytest.mark.interop
async def test_official_client_creates_mints_lists_and_deletes(tmp_path: Path, node: str) -> None:
    app = create_local_turso_app(tmp_path, org="interop", api_token=TOKEN)
    async with serve(app) as address:
        process = await asyncio.create_subprocess_exec(
            node,
            str(PROBE),
            address.url,
            "interop",
            TOKEN,
            "--name",
            "probe-db",
            cwd=JS_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, (stdout.decode(), stderr.decode())
    report = json.loads(stdout)
    assert report["ok"] is True
    assert report["steps"]["create_again"]["error"]["status"] == 409
    assert report["steps"]["get_deleted"]["error"]["status"] == 404
    # The probe ran SQL at "libsql://" + Hostname when @libsql/client is installed.
    assert report["steps"]["query"]["ok"] is True
    assert local_turso(app).registry.database("probe-db") is None
