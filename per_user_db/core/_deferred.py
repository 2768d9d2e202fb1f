"""The deferred schema check, sans I/O: a guard that rides in the app's first request.

``connect(..., lazy=True)`` sends nothing. The first statement the app sends goes out as
a batch whose step 0 is a guard and whose own steps run only if the guard succeeded::

    execute:   guard | stmt  (if ok 0)
    batch:     BEGIN IMMEDIATE | guard (if ok 0) | stmts... | COMMIT | ROLLBACK (if not ok commit)

The guard fails at run time (the ``json_extract`` trick of :mod:`._apply`) unless the
version table holds exactly the migrations of the set up to its head: as many rows as
migrations, the newest at the head's ``when``, with the head's hash (or drizzle's Expo
migrator's empty one). A missing version table fails the guard too. When it fails,
nothing the app sent ran; the caller migrates and sends the statements again.

What the guard does not look at: the hashes of older rows. A file edited after it ran
(drift) is reported by the full check (``connect()`` without ``lazy``,
``migration_status``), not by this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._apply import _guard
from ._hrana import Batch, BatchStep, NotCond, OkCond, Stmt

if TYPE_CHECKING:
    from ._migrations import MigrationSet

__all__ = [
    "HEAD_GUARD_MARKER",
    "guarded_atomic_batch",
    "guarded_execute",
    "head_guard",
]

HEAD_GUARD_MARKER = "per-user-db: schema is not at the expected head"


def head_guard(migrations: MigrationSet) -> Stmt | None:
    """The guard for ``migrations``; None for an empty set (nothing to check)."""
    head = migrations.head
    if head is None:
        return None
    table = migrations.version_table  # a plain identifier, checked by MigrationSet
    newest = f'(SELECT max(created_at) FROM "{table}")'
    condition = (
        f'(SELECT count(*) FROM "{table}") = {len(migrations)} AND {newest} = {head.when} '
        f'AND (SELECT hash FROM "{table}" WHERE created_at = {newest} LIMIT 1) '
        f"IN ('{head.hash}', '')"
    )
    return _guard(condition, HEAD_GUARD_MARKER)


def guarded_execute(guard: Stmt, stmt: Stmt) -> Batch:
    """``stmt`` behind ``guard``, outside any transaction (as a plain execute runs)."""
    return Batch(steps=(BatchStep(stmt=guard), BatchStep(stmt=stmt, condition=OkCond(step=0))))


def guarded_atomic_batch(
    stmts: tuple[Stmt, ...], *, guard: Stmt | None, begin: str = "BEGIN IMMEDIATE"
) -> Batch:
    """``BEGIN``, the guard if any, each statement only if the step before succeeded,
    ``COMMIT`` likewise, and a ``ROLLBACK`` when the ``COMMIT`` did not run: all or
    nothing, in one request. The statements start at step 1, or 2 behind a guard."""
    opening = (Stmt(sql=begin, want_rows=False), *(() if guard is None else (guard,)))
    steps = [BatchStep(stmt=opening[0])]
    for stmt in (*opening[1:], *stmts, Stmt(sql="COMMIT", want_rows=False)):
        steps.append(BatchStep(stmt=stmt, condition=OkCond(step=len(steps) - 1)))
    commit = len(steps) - 1
    rollback = Stmt(sql="ROLLBACK", want_rows=False)
    steps.append(BatchStep(stmt=rollback, condition=NotCond(cond=OkCond(step=commit))))
    return Batch(steps=tuple(steps))
