"""Hypothesis strategies and builders shared by the core tests."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from per_user_db import MigrationSet, migrations_from_texts
from per_user_db.core._migrations import BREAKPOINT


def journal(entries: list[tuple[str, int]]) -> str:
    return json.dumps(
        {
            "version": "7",
            "dialect": "sqlite",
            "entries": [
                {"idx": i, "version": "6", "when": when, "tag": tag, "breakpoints": True}
                for i, (tag, when) in enumerate(entries)
            ],
        }
    )


def build_set(statements_per_migration: list[list[str]], whens: list[int]) -> MigrationSet:
    entries = [(f"{i:04d}_m{i}", when) for i, when in enumerate(whens)]
    files = {
        f"{tag}.sql": f"\n{BREAKPOINT}\n".join(stmts) + "\n"
        for (tag, _), stmts in zip(entries, statements_per_migration, strict=True)
    }
    return migrations_from_texts(journal(entries), files)


@st.composite
def migration_sets(draw: st.DrawFn, min_size: int = 0, max_size: int = 8) -> MigrationSet:
    count = draw(st.integers(min_size, max_size))
    gaps = draw(st.lists(st.integers(1, 10**9), min_size=count, max_size=count))
    start = draw(st.integers(1_600_000_000_000, 1_800_000_000_000))
    whens = [start + sum(gaps[: i + 1]) for i in range(count)]
    statements = [
        [
            f"CREATE TABLE t{i}_{j} (id integer PRIMARY KEY, v text);"
            for j in range(draw(st.integers(1, 3)))
        ]
        for i in range(count)
    ]
    return build_set(statements, whens)
