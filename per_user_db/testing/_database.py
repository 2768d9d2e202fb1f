"""Fresh, fully migrated in-memory databases, copied from one template per process.

Replaying the four bundled migrations for every test costs a few milliseconds and a dozen
table rebuilds. Instead the first call migrates one ``:memory:`` database with the real
:func:`~per_user_db.connect` and keeps its bytes (``sqlite3.Connection.serialize``);
every later database is a new ``:memory:`` connection that loads those bytes
(``Connection.deserialize``) on its own worker thread, which takes well under a
millisecond. The template is plain bytes in a module global, so it outlives the event
loop that built it (pytest-asyncio gives every test its own loop).

    db = await memory_database()   # Database, migrated, empty; close it when done
    stats = template_stats()       # builds, build time, per-copy setup times
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from per_user_db._connect import connect
from per_user_db._open import open_database
from per_user_db._transports._local import LocalTransport

if TYPE_CHECKING:
    import sqlite3

    from per_user_db._database import Database

__all__ = ["TemplateStats", "memory_database", "template_stats"]


@dataclass(slots=True, kw_only=True)
class TemplateStats:
    """How the template was used in this process (for the plugin's summary line)."""

    builds: int = 0
    build_ms: float = 0.0
    setup_ms: list[float] = field(default_factory=list)
    """Per-database setup times: open a ``:memory:`` connection and load the template."""

    @property
    def setups(self) -> int:
        return len(self.setup_ms)

    @property
    def median_setup_ms(self) -> float | None:
        return statistics.median(self.setup_ms) if self.setup_ms else None

    def summary(self) -> str:
        median = self.median_setup_ms
        return (
            f"per_user_database: {self.setups} setups, "
            f"median {median if median is not None else 0.0:.2f} ms, "
            f"template built {self.builds} time(s) in {self.build_ms:.1f} ms"
        )


_stats = TemplateStats()
_template: bytes | None = None


def template_stats() -> TemplateStats:
    """The live statistics of this process's template (not a copy)."""
    return _stats


def _local(db: Database) -> LocalTransport:
    transport = db.transport
    if not isinstance(transport, LocalTransport):  # pragma: no cover - ":memory:" is local
        raise TypeError(f"{db!r} is not a local SQLite database")
    return transport


async def _build_template() -> bytes:
    started = time.perf_counter()
    db = (await connect(":memory:")).unwrap()
    try:

        def dump(conn: sqlite3.Connection) -> bytes:
            return conn.serialize()

        data = await _local(db).run_sqlite(dump)
    finally:
        await db.close()
    _stats.builds += 1
    _stats.build_ms += (time.perf_counter() - started) * 1000
    return data


async def _template_bytes() -> bytes:
    global _template  # one template per process, by design
    if _template is None:
        _template = await _build_template()
    return _template


async def memory_database() -> Database:
    """A new ``:memory:`` :class:`~per_user_db.Database` holding the bundled schema at its
    head and no rows. The caller closes it."""
    template = await _template_bytes()
    started = time.perf_counter()
    db = (await open_database(":memory:")).unwrap()
    try:

        def load(conn: sqlite3.Connection) -> None:
            conn.deserialize(template)

        await _local(db).run_sqlite(load)
    except BaseException:
        await db.close()
        raise
    _stats.setup_ms.append((time.perf_counter() - started) * 1000)
    return db
