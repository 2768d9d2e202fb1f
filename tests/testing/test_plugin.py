"""The plugin as a user meets it: loaded from the entry point, cheap to import, optional."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("aiohttp", "sqlglot", "per_user_db.dev", "per_user_db.schema", "libsql_client")

PROBE = f"""
import json, sys

def loaded(names):
    return sorted(n for n in names if n in sys.modules)

kit = [m for m in sys.modules if m.startswith("per_user_db.testing.")]
import per_user_db.testing.plugin
report = {{"plugin": loaded({HEAVY!r})}}
report["kit"] = sorted(m for m in sys.modules if m.startswith("per_user_db.testing."))
import per_user_db.testing as kit
kit.mock_create_database_ok
report["mocks"] = loaded({HEAVY!r})
kit.factories
report["factories_loaded"] = "per_user_db.testing._factories" in sys.modules
print(json.dumps(report))
"""


PACKAGE_ONLY = (
    f"import json, sys, per_user_db; print(json.dumps([n for n in {HEAVY!r} if n in sys.modules]))"
)


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def test_the_plugin_imports_nothing_heavy() -> None:
    report = json.loads(run_python(PROBE))
    # pytest starts without aiohttp, sqlglot, libsql_client or the dev server: the
    # package's names load on first use, and so does the rest of the kit.
    assert report["plugin"] == []
    assert report["kit"] == ["per_user_db.testing.plugin"]
    assert report["factories_loaded"]


def test_importing_the_package_alone_is_cheap_too() -> None:
    assert json.loads(run_python(PACKAGE_ONLY)) == []


THROWAWAY_TESTS = """
from __future__ import annotations

from per_user_db import connect, create_database
from per_user_db.testing import mock_create_database_ok


async def test_database_and_factories(per_user_database, per_user_db_factories):
    await per_user_db_factories.set_logs.create(2)
    rows = await per_user_database.execute("SELECT count(*) FROM workouts")
    assert rows[0][0] == 1


async def test_next_test_gets_an_empty_database(per_user_database):
    rows = await per_user_database.execute("SELECT count(*) FROM set_logs")
    assert rows[0][0] == 0


async def test_mock_fixture(per_user_db_mocks):
    mock = per_user_db_mocks.create_database_ok(name="mocked")
    assert (await create_database("user-1")).unwrap().name == "mocked"
    assert mock.calls[0].args == ("user-1",)


async def test_mock_context_manager():
    with mock_create_database_ok() as mock:
        credentials = (await create_database("user-2")).unwrap()
    assert credentials.url == "libsql://mock-per-user-db.turso.io"
    assert mock.call_count == 1


async def test_fake_turso(fake_turso):
    credentials = (await create_database("user-3")).unwrap()
    assert fake_turso.database_names() == [credentials.name]
    async with (await connect(credentials.url, credentials.auth_token)).unwrap() as db:
        await db.execute("INSERT INTO programs (id, name) VALUES ('p', 'Push')")
        assert (await db.execute("SELECT name FROM programs"))[0][0] == "Push"
"""


@pytest.fixture
def throwaway(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with no conftest.py: only an ini file and a test module."""
    pytester.makeini(
        textwrap.dedent(
            """
            [pytest]
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = function
            """
        )
    )
    pytester.makepyfile(test_app=THROWAWAY_TESTS)
    return pytester


def test_a_throwaway_project_uses_the_installed_plugin(throwaway: pytest.Pytester) -> None:
    result = throwaway.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        ["per_user_database: 2 setups, median * ms, template built 1 time(s) in * ms"]
    )


def test_the_plugin_can_be_turned_off(throwaway: pytest.Pytester) -> None:
    result = throwaway.runpytest_subprocess(
        "-q", "-p", "no:per_user_db", "-p", "no:cacheprovider", "-k", "next_test"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'per_user_database' not found*"])
