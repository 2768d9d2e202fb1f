"""The ``per_user_database`` fixture: migrated, empty, isolated, copied from one template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from per_user_db import Database, DatabaseError, migration_status
from per_user_db._bundled import bundled_migrations
from per_user_db.schema import load_schema
from per_user_db.testing import memory_database, template_stats

MARKER = "written-by-an-earlier-test"


async def test_is_migrated_to_the_head(per_user_database: Database) -> None:
    plan = (await migration_status(per_user_database)).unwrap()
    assert plan.pending == ()
    rows = await per_user_database.execute("SELECT count(*) FROM __drizzle_migrations")
    assert rows[0][0] == len(bundled_migrations())


async def test_has_every_table_of_the_schema_and_no_rows(per_user_database: Database) -> None:
    found = await per_user_database.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_\\_%' "
        "ESCAPE '\\' AND name NOT LIKE 'sqlite_%'"
    )
    assert sorted(str(r[0]) for r in found) == sorted(t.name for t in load_schema())
    for table in load_schema():
        count = await per_user_database.execute(f'SELECT count(*) FROM "{table.name}"')
        assert count[0][0] == 0, table.name


async def test_enforces_foreign_keys_and_checks(per_user_database: Database) -> None:
    with pytest.raises(DatabaseError, match="FOREIGN KEY"):
        await per_user_database.execute(
            "INSERT INTO days (id, program_id, label, display_order) VALUES ('d', 'none', 'x', 0)"
        )
    with pytest.raises(DatabaseError, match="CHECK"):
        await per_user_database.execute("INSERT INTO programs (id, name) VALUES ('p', '')")


# The next two run in this order (pytest keeps file order): the second must not see the
# first one's row.
async def test_isolation_writer(per_user_database: Database) -> None:
    await per_user_database.execute("INSERT INTO programs (id, name) VALUES ('p1', ?)", [MARKER])
    rows = await per_user_database.execute("SELECT name FROM programs")
    assert [r[0] for r in rows] == [MARKER]


async def test_isolation_reader(per_user_database: Database) -> None:
    rows = await per_user_database.execute("SELECT count(*) FROM programs")
    assert rows[0][0] == 0


async def test_the_template_is_built_once_per_process(per_user_database: Database) -> None:
    stats = template_stats()
    assert stats.builds == 1
    before = stats.setups
    other = await memory_database()
    try:
        assert other is not per_user_database
        await other.execute("INSERT INTO programs (id, name) VALUES ('only-here', 'x')")
        rows = await per_user_database.execute("SELECT count(*) FROM programs")
        assert rows[0][0] == 0
    finally:
        await other.close()
    assert stats.builds == 1
    assert stats.setups == before + 1
    assert stats.median_setup_ms is not None
    assert "setups, median" in stats.summary()


@pytest.fixture
def closed_afterwards() -> Iterator[list[Database]]:
    seen: list[Database] = []
    yield seen
    # Set up before per_user_database, so torn down after it: the database must be
    # closed by now. (A failed assertion here errors the test.)
    assert seen
    assert seen[0].closed


async def test_the_fixture_closes_its_database(
    closed_afterwards: list[Database], per_user_database: Database
) -> None:
    closed_afterwards.append(per_user_database)
    assert not per_user_database.closed
