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
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from per_user_db.core._hrana import (
    BatchRequest,
    CloseRequest,
    CloseSqlRequest,
    DescribeRequest,
    ExecuteRequest,
    OkCond,
    SequenceRequest,
    StoreSqlRequest,
)

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from per_user_db.core._hrana import Batch, Stmt, StreamRequest

__all__ = [
    "INLINE_ARGUMENTS",
    "INLINE_BUDGET",
    "INLINE_TEXT",
    "INLINE_VALUE",
    "FastPipelines",
    "PipelineFacts",
    "argument_shape",
    "inspect",
]

INLINE_BUDGET = 0.002
"""Seconds a pipeline may run on the event loop's thread before it is interrupted and
sent to a worker thread: the longest stall one request can cause the server between two
SQLite instructions."""

INLINE_TEXT = 4096
INLINE_ARGUMENTS = 4096
INLINE_VALUE = 4096
"""Characters of SQL and of text or blob arguments a pipeline may carry to run inline,
and bytes of the longest string or blob it may make or read there (SQLite's
SQLITE_LIMIT_LENGTH while it runs inline: a longer value fails it with SQLITE_TOOBIG,
undone, and it runs again on a worker).
The budget is checked between SQLite's instructions, and one instruction's cost grows
with the values it works on (``instr`` on two long strings, say); reading a long text
costs Python time before SQLite runs at all. Larger pipelines go to a worker, whose
thread leaves the event loop free."""

_QUERIES = frozenset({"SELECT", "VALUES"})
_ENDS = frozenset({"COMMIT", "END"})
_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})


@dataclass(frozen=True, slots=True)
class PipelineFacts:
    """What the server needs to know about a one-shot pipeline before running it."""

    restartable: bool
    """It may run inline first and again on a worker (see the module's docstring), and
    is small enough to (:data:`INLINE_TEXT`, :data:`INLINE_ARGUMENTS`)."""
    key: tuple[str | None, ...]
    """Its SQL texts, by which :class:`FastPipelines` remembers it."""
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
        # What clients send for execute().
        facts = _one_statement(first.stmt.sql)
        if facts.restartable and _arguments_size(first.stmt) > INLINE_ARGUMENTS:
            return replace(facts, restartable=False)
        return facts
    stored: dict[int, str] = {}
    texts: list[str | None] = []
    restartable = True
    wrote = False
    arguments = 0
    for request in requests:
        kind: _Kind
        match request:
            case StoreSqlRequest(sql_id=sql_id, sql=sql):
                stored.setdefault(sql_id, sql)  # storing a taken id fails (SQL_EXISTS)
                texts.append(sql)
                continue
            case CloseSqlRequest(sql_id=sql_id):
                stored.pop(sql_id, None)
                continue
            case ExecuteRequest(stmt=stmt):
                sql = _text(stmt, stored)
                texts.append(sql)
                kind = "read" if _is_query(sql) else "write"
                arguments += _arguments_size(stmt)
            case BatchRequest(batch=batch):
                sqls = [_text(step.stmt, stored) for step in batch.steps]
                texts.extend(sqls)
                kind = _batch_kind(batch, sqls)
                arguments += sum(_arguments_size(step.stmt) for step in batch.steps)
            case DescribeRequest(sql=sql):
                texts.append(sql)
                kind = "read"  # compiled, never run
            case SequenceRequest(sql=sql):
                texts.append(sql)
                kind = "script"
            case _:
                continue  # get_autocommit, close: no SQL of their own
        # Whatever runs after a write could be interrupted after the write committed.
        restartable = restartable and not wrote and kind != "script"
        wrote = wrote or kind == "write"
    lowered = "\n".join(t for t in texts if t is not None).lower()
    small = len(lowered) <= INLINE_TEXT and arguments <= INLINE_ARGUMENTS
    return PipelineFacts(
        restartable=restartable and small,
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
        restartable=len(sql) <= INLINE_TEXT,
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


# Possessive: a text of blanks and comments with no word after them must fail at once,
# not backtrack over every way to split them.
_FIRST_WORD = re.compile(r"(?:\s|--[^\n]*+(?:\n|\Z)|/\*.*?\*/)*+([A-Za-z]+)", re.DOTALL)


def _keyword(sql: str) -> str:
    # Only the start of the text, on the event loop's thread: a pipeline of longer text
    # never runs inline anyway (INLINE_TEXT).
    word = _FIRST_WORD.match(sql, 0, INLINE_TEXT)
    return word.group(1).upper() if word else ""


def argument_shape(requests: Sequence[StreamRequest]) -> tuple[int, ...]:
    """The sizes of a pipeline's arguments, to within a factor of two: a number's
    magnitude, a text's or blob's length. With the SQL, it is what
    :class:`FastPipelines` remembers: one SQLite instruction can take time in
    proportion to a value (``printf('%.*c', ?, 'a')``), so SQL that ran fast with small
    values has not run fast with large ones."""
    shape: list[int] = []
    for request in requests:
        match request:
            case ExecuteRequest(stmt=stmt):
                shape.extend(_value_sizes(stmt))
            case BatchRequest(batch=batch):
                for step in batch.steps:
                    shape.extend(_value_sizes(step.stmt))
            case _:
                pass
    return tuple(shape)


def _value_sizes(stmt: Stmt) -> list[int]:
    sizes: list[int] = []
    for value in (*stmt.args, *(value for _, value in stmt.named_args)):
        if isinstance(value, int):
            sizes.append(abs(value).bit_length())
        elif isinstance(value, float):
            sizes.append(-1 if value != value else min(int(abs(value)), 2**64).bit_length())
        elif value is None:
            sizes.append(-2)
        else:
            sizes.append(len(value).bit_length() + 100)  # text and blobs apart from numbers
    return sizes


def _arguments_size(stmt: Stmt) -> int:
    """Characters and bytes of the statement's text and blob arguments."""
    values = [*stmt.args, *(value for _, value in stmt.named_args)]
    return sum(len(v) for v in values if isinstance(v, str | bytes))


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


class FastPipelines:
    """The pipelines (SQL and :func:`argument_shape`) that last ran within the budget,
    most recent last.

    Only these run inline: a pipeline whose SQL the server has not seen run quickly goes
    to a worker, which times it, and one that outruns the budget inline is forgotten. So
    a request of new SQL, however slow one of its instructions, never stalls the event
    loop. The same SQL over values of the same sizes still can, by as much as one
    instruction takes on values of the database's own (``instr`` over stored texts).
    """

    __slots__ = ("_keys", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._keys: collections.OrderedDict[Hashable, None] = collections.OrderedDict()
        self._limit = limit

    def __contains__(self, key: Hashable) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def note(self, key: Hashable, seconds: float) -> None:
        """Remember how long the pipeline ``key`` took: within the budget, it runs inline
        next time; past it, it does not."""
        if seconds > INLINE_BUDGET:
            self._keys.pop(key, None)
            return
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)
