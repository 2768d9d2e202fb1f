"""The per-user-db command, run as a process against the local Turso and embedded."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from per_user_db.core._tokens import decode_claims

from .conftest import LocalTursoServer


async def cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TURSO_", "PER_USER_DB_", "APP_ENV"))
    }
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "per_user_db", *args], env=clean | env, cwd=cwd, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def turso_env(turso: LocalTursoServer) -> dict[str, str]:
    return {
        "TURSO_PLATFORM_API_TOKEN": turso.turso.api_token,
        "TURSO_ORGANIZATION": turso.turso.org,
        "TURSO_API_URL": turso.api_url,
        "APP_ENV": "ci",
    }


async def test_create_list_token_delete_on_the_local_turso(
    turso: LocalTursoServer, tmp_path: Path
) -> None:
    env = turso_env(turso)
    code, out, err = await cli("create", "user-1", "--json", env=env, cwd=tmp_path)
    assert code == 0, err
    created = json.loads(out)
    assert created["name"] == "next-lift-ci-user-c6c289e49e9c05b2"
    assert created["auth_token"] is None  # not without --show-token
    assert len(created["migrations_applied"]) == 4
    assert turso.turso.api_token not in out + err

    code, out, _ = await cli("list", "--prefix", "next-lift-ci-", "--json", env=env, cwd=tmp_path)
    assert code == 0
    assert [d["name"] for d in json.loads(out)] == [created["name"]]
    code, out, _ = await cli("list", "--exclude", "next-lift-", env=env, cwd=tmp_path)
    assert out.strip() == "(no databases)"

    code, out, _ = await cli(
        "token", created["name"], "--never", "--read-only", env=env, cwd=tmp_path
    )
    assert code == 0
    claims = decode_claims(out.strip()).unwrap()
    assert (claims.access, claims.expires) == ("ro", None)

    code, _, err = await cli("delete", "someone-elses-db", env=env, cwd=tmp_path)
    assert code == 3
    assert "pass --force" in err
    code, out, _ = await cli("delete", created["name"], env=env, cwd=tmp_path)
    assert (code, out.strip()) == (0, f"{created['name']}: deleted")
    code, out, _ = await cli("delete", created["name"], env=env, cwd=tmp_path)
    assert (code, out.strip()) == (0, f"{created['name']}: already gone")


async def test_embedded_main_job(tmp_path: Path) -> None:
    code, out, err = await cli("create", "demo-user", env={}, cwd=tmp_path)
    assert code == 0, err
    assert "migrations 4 applied, 0 already there" in out
    assert "file:" in out
    code, out, _ = await cli("create", "demo-user", env={}, cwd=tmp_path)
    assert "migrations 0 applied, 4 already there" in out
    code, out, _ = await cli("list", "--json", env={}, cwd=tmp_path)
    assert len(json.loads(out)) == 1
    code, _, err = await cli("token", "x", env={}, cwd=tmp_path)
    assert code == 3
    assert "take no token" in err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TURSO_PLATFORM_API_TOKEN": "t"}, "setting TURSO_ORGANIZATION: required"),
        ({"PER_USER_DB_TOKEN_DAYS": "-1"}, "setting PER_USER_DB_TOKEN_DAYS"),
    ],
)
async def test_bad_settings_exit_2_naming_the_variable(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    code, _, err = await cli("list", env=env, cwd=tmp_path)
    assert code == 2
    assert message in err


@pytest.mark.parametrize("command", [[], ["create"], ["list"], ["delete"], ["token"]])
async def test_help_everywhere(command: list[str], tmp_path: Path) -> None:
    code, out, _ = await cli(*command, "--help", env={}, cwd=tmp_path)
    assert code == 0
    assert "usage: per-user-db" in out


async def test_dev_help(tmp_path: Path) -> None:
    code, out, _ = await cli("dev", "--help", env={}, cwd=tmp_path)
    assert code == 0
    assert "--fail-rate" in out
