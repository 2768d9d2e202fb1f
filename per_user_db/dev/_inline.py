"""Which one-shot pipelines the local server may run on its event loop's thread.

A ``SELECT 1`` costs SQLite a few microseconds and a hand-off to a worker thread and
back costs tens, so the server first runs a one-shot pipeline (``[…, close]`` without a
baton) inline, under a budget. Past the budget SQLite interrupts it, and the pipeline
runs again on a worker thread, where it may take as long as it needs. Running a
pipeline twice is only sound when the interrupted attempt left nothing behind, so the
inline attempt is only for pipelines of this shape (:func:`inspect`):

* any number of queries (``SELECT …``, ``VALUES …``), which change nothing, then
* at most one request that may write, and nothing after it that runs SQL: either one
  statement (SQLite undoes an interrupted statement as a whole), or one *transaction
  batch*, as every client sends for ``batch()``: ``BEGIN``, then steps each conditioned
  on the previous one succeeding, up to ``COMMIT``, then only ``ROLLBACK`` steps. An
  interrupted step fails, so the COMMIT never runs, and the ROLLBACK (or closing the
  stream) undoes the rest.

The inline attempt stops at the first interrupted request, so nothing after it runs.

The same holds for a statement that meets another connection's lock: inline, SQLite's
busy wait is off, so it fails at once with ``SQLITE_BUSY`` having done nothing, and the
worker runs the pipeline again, waiting for the lock.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from per_user_db._transports._sqlite import first_keyword
from per_user_db.core._hrana import (
    BatchRequest,
    CloseRequest,
    DescribeRequest,
    ExecuteRequest,
    OkCond,
    SequenceRequest,
    StoreSqlRequest,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from per_user_db.core._hrana import Batch, Stmt, StreamRequest

__all__ = ["INLINE_BUDGET", "PipelineFacts", "SlowPipelines", "inspect"]

INLINE_BUDGET = 0.002
"""Seconds a pipeline may run on the event loop's thread before it is interrupted and
sent to a worker thread: the longest stall one request can cause the server."""

_QUERIES = frozenset({"SELECT", "VALUES"})
_ENDS = frozenset({"COMMIT", "END"})
_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})


@dataclass(frozen=True, slots=True)
class PipelineFacts:
    """What the server needs to know about a one-shot pipeline before running it."""

    restartable: bool
    """It may run inline first and again on a worker (see the module's docstring)."""
    key: tuple[str | None, ...]
    """Its SQL texts: a pipeline that once outran the budget goes to a worker at once."""
    touches_pragmas: bool
    """Some SQL mentions a pragma: the connection may carry a setting to the next
    pipeline, so it is not kept for one."""
    touches_temp: bool
    """Some SQL may create a temporary table, view or trigger."""


def inspect(requests: Sequence[StreamRequest]) -> PipelineFacts:
    """The facts of a pipeline (its requests as decoded, ``close`` included)."""
    if (
        len(requests) == 2
        and isinstance(requests[1], CloseRequest)
        and isinstance(first := requests[0], ExecuteRequest)
        and first.stmt.sql is not None
    ):
        return _one_statement(first.stmt.sql)  # what clients send for execute()
    stored: dict[int, str] = {}
    texts: list[str | None] = []
    restartable = True
    wrote = False
    for request in requests:
        kind: _Kind
        match request:
            case StoreSqlRequest(sql_id=sql_id, sql=sql):
                stored[sql_id] = sql
                texts.append(sql)
                continue
            case ExecuteRequest(stmt=stmt):
                sql = _text(stmt, stored)
                texts.append(sql)
                kind = "read" if _is_query(sql) else "write"
            case BatchRequest(batch=batch):
                sqls = [_text(step.stmt, stored) for step in batch.steps]
                texts.extend(sqls)
                kind = _batch_kind(batch, sqls)
            case DescribeRequest(sql=sql):
                texts.append(sql)
                kind = "read"  # compiled, never run
            case SequenceRequest(sql=sql):
                texts.append(sql)
                kind = "script"
            case _:
                continue  # close_sql, get_autocommit, close: no SQL of their own
        # Whatever runs after a write could be interrupted after the write committed.
        restartable = restartable and not wrote and kind != "script"
        wrote = wrote or kind == "write"
    lowered = "\n".join(t for t in texts if t is not None).lower()
    return PipelineFacts(
        restartable=restartable,
        key=tuple(texts),
        touches_pragmas="pragma" in lowered,
        touches_temp="temp" in lowered,
    )


_Kind = Literal["read", "write", "script"]


@functools.lru_cache(maxsize=1024)
def _one_statement(sql: str) -> PipelineFacts:
    # One statement is undone as a whole when interrupted: always restartable.
    lowered = sql.lower()
    return PipelineFacts(
        restartable=True,
        key=(sql,),
        touches_pragmas="pragma" in lowered,
        touches_temp="temp" in lowered,
    )


def _text(stmt: Stmt, stored: dict[int, str]) -> str | None:
    if stmt.sql is not None:
        return stmt.sql
    return None if stmt.sql_id is None else stored.get(stmt.sql_id)


def _is_query(sql: str | None) -> bool:
    return sql is not None and _keyword(sql) in _QUERIES


def _batch_kind(batch: Batch, sqls: Sequence[str | None]) -> _Kind:
    if all(_is_query(sql) for sql in sqls):
        return "read"
    # One step is one statement, undone as a whole when interrupted. Of several
    # unconditioned steps, a later one still runs after an earlier one was interrupted.
    if len(sqls) == 1 or _is_transaction_batch(batch, sqls):
        return "write"
    return "script"


@functools.lru_cache(maxsize=1024)
def _keyword(sql: str) -> str:
    return first_keyword(sql)


def _is_transaction_batch(batch: Batch, sqls: Sequence[str | None]) -> bool:
    steps = batch.steps
    if len(steps) < 2 or steps[0].condition is not None:
        return False
    words = [None if sql is None else _keyword(sql) for sql in sqls]
    if words[0] != "BEGIN":
        return False
    for index in range(1, len(steps)):
        word = words[index]
        if word is None or steps[index].condition != OkCond(step=index - 1):
            return False
        if word in _ENDS:
            # After the COMMIT only ROLLBACKs, whatever their conditions.
            return all(w == "ROLLBACK" for w in words[index + 1 :])
        if word in _TRANSACTION_CONTROL:
            return False
    return True  # no COMMIT: closing the stream rolls it all back


class SlowPipelines:
    """The SQL of pipelines that outran the inline budget, most recent last: they go
    straight to a worker next time instead of stalling the loop again."""

    __slots__ = ("_keys", "_limit")

    def __init__(self, limit: int = 256) -> None:
        self._keys: collections.OrderedDict[tuple[str | None, ...], None] = (
            collections.OrderedDict()
        )
        self._limit = limit

    def seen(self, key: tuple[str | None, ...]) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def note(self, key: tuple[str | None, ...]) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)
