"""Hrana requests run on a SQLite connection: statements, batches, describe, streams.

Plain functions that run Hrana requests (:func:`execute_stmt`, :func:`execute_batch`,
:func:`execute_sequence`, :func:`describe_sql`) on a ``sqlite3`` connection. They are
meant to be called *inside* :meth:`~per_user_db._transports._sqlite.SqliteWorker.run` and
return ``Ok``/``Err`` values: an SQL error is an expected outcome that travels in-band,
never an exception. This module is the one place where ``sqlite3`` exceptions become
:class:`~per_user_db.core._hrana.HranaError`.

Used by the client's local transport. The local protocol server (``per_user_db.dev``)
runs APSW connections with the statement functions of ``per_user_db.dev._engine``; the
batch and stream logic on top of them (:class:`HranaEngine`) is this module's, shared by
both.

Two limits of Python's ``sqlite3`` module shape the results here: it exposes neither
``sqlite3_column_decltype`` nor ``sqlite3_bind_parameter_name``, so result columns carry
``decltype=None`` and :func:`describe_sql` finds parameters with a small tokenizer.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from typing_extensions import TypeVar as DefaultTypeVar  # typing's takes a default from 3.13

from per_user_db.core._hrana import (
    AndCond,
    Batch,
    BatchRequest,
    BatchResponse,
    BatchResult,
    CloseRequest,
    CloseResponse,
    CloseSqlRequest,
    CloseSqlResponse,
    Col,
    DescribeParam,
    DescribeRequest,
    DescribeResponse,
    DescribeResult,
    ExecuteRequest,
    ExecuteResponse,
    GetAutocommitRequest,
    GetAutocommitResponse,
    HranaError,
    IsAutocommitCond,
    NotCond,
    OrCond,
    SequenceRequest,
    SequenceResponse,
    Stmt,
    StmtResult,
    StoreSqlRequest,
    StoreSqlResponse,
    StreamError,
    StreamOk,
    Value,
    condition_problem,
    evaluate_condition,
)
from per_user_db.core._result import Err, Ok

from ._sqlite import WorkerConnection

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from per_user_db.core._hrana import Cond, StreamRequest, StreamResponse, StreamResult

__all__ = [
    "NO_STATEMENT",
    "SQLITE3",
    "HranaEngine",
    "describe_sql",
    "execute_batch",
    "execute_sequence",
    "execute_stmt",
    "first_keyword",
    "hrana_error_from_sqlite",
    "resolve_sql",
    "roll_back",
    "run_stream_request",
    "run_stream_requests",
    "split_statements",
    "statement_sql",
]

_T = TypeVar("_T")
_C = DefaultTypeVar("_C", bound=WorkerConnection, default=sqlite3.Connection)

# --- errors --------------------------------------------------------------------------------

_PARSE_MARKERS = ("syntax error", "incomplete input", "unrecognized token")
_ARGS_MARKERS = ("binding", "bindings", "supplied a dictionary", "supply a value")


def hrana_error_from_sqlite(exc: sqlite3.Error | OverflowError) -> HranaError:
    """Map a ``sqlite3`` exception to the in-band error a Hrana server would report.

    Codes: ``SQL_PARSE_ERROR`` for syntax errors, ``SQL_MANY_STATEMENTS`` for more than
    one statement in ``sql``, ``ARGS_INVALID`` for arguments that do not match the
    statement, otherwise SQLite's extended result code name (``SQLITE_CONSTRAINT_UNIQUE``,
    ``SQLITE_BUSY``, ``SQLITE_READONLY``, ``SQLITE_INTERRUPT``, …).
    """
    message = str(exc)
    if isinstance(exc, OverflowError):
        return HranaError(message=f"argument cannot be bound: {message}", code="ARGS_INVALID")
    name = getattr(exc, "sqlite_errorname", None)
    lowered = message.lower()
    if name is None:
        if "one statement at a time" in lowered:
            return HranaError(
                message="SQL string contains more than one statement; "
                "use a batch or a sequence for several",
                code="SQL_MANY_STATEMENTS",
            )
        if any(marker in lowered for marker in _ARGS_MARKERS):
            return HranaError(message=message, code="ARGS_INVALID")
        return HranaError(message=message, code="SQL_INPUT_ERROR")
    if name == "SQLITE_ERROR" and any(marker in lowered for marker in _PARSE_MARKERS):
        return HranaError(
            message=f"SQL string could not be parsed: {message}", code="SQL_PARSE_ERROR"
        )
    return HranaError(message=message, code=str(name))


# --- statements ----------------------------------------------------------------------------


def resolve_sql(
    sql: str | None, sql_id: int | None, stored: Mapping[int, str]
) -> Ok[str] | Err[HranaError]:
    """The SQL text of a request that names either ``sql`` or a stored ``sql_id``."""
    if sql is not None:
        return Ok(sql)
    if sql_id is not None and sql_id in stored:
        return Ok(stored[sql_id])
    return Err(
        HranaError(
            message=f"SQL text {sql_id} was not stored on this stream (store_sql first)",
            code="SQL_NOT_FOUND",
        )
    )


def _bindings(stmt: Stmt) -> tuple[Value, ...] | dict[str, Value]:
    if not stmt.named_args:
        return stmt.args
    # sqlite3 looks names up without their prefix character (":x" -> "x"). A parameter
    # nobody supplied is an ARGS_INVALID error, as sqld answers, not a silent NULL.
    return {name.lstrip(":@$"): value for name, value in stmt.named_args}


NO_STATEMENT = HranaError(
    message="SQL string does not contain any statement", code="SQL_NO_STATEMENT"
)


def statement_sql(stmt: Stmt, stored: Mapping[int, str] | None) -> Ok[str] | Err[HranaError]:
    """The SQL a statement runs (its text, or the text stored under its id), if that
    holds a statement: the start of ``execute_stmt`` on either engine."""
    match resolve_sql(stmt.sql, stmt.sql_id, stored or {}):
        case Err() as missing:
            return missing
        case Ok(sql):
            pass
    return Ok(sql) if _has_statement(sql) else Err(NO_STATEMENT)


def execute_stmt(
    conn: sqlite3.Connection, stmt: Stmt, stored: Mapping[int, str] | None = None
) -> Ok[StmtResult] | Err[HranaError]:
    """Run one statement; call it inside :meth:`SqliteWorker.run`."""
    match statement_sql(stmt, stored):
        case Err() as refused:
            return refused
        case Ok(sql):
            pass
    started = time.perf_counter()
    changes_before = conn.total_changes
    try:
        inserting = _is_insert(sql)
        cursor = conn.execute(sql, _bindings(stmt))
        try:
            rows = cursor.fetchall()
            description = cursor.description or ()
            affected = cursor.rowcount
            rowid_after = cursor.lastrowid
        finally:
            cursor.close()
        written = conn.total_changes - changes_before
        if affected < 0:
            # sqlite3 reports -1 for DML it does not recognise by its first word
            # (WITH ... INSERT); SQLite's own count of the statement's rows is exact.
            affected = conn.execute("SELECT changes()").fetchone()[0] if written else 0
    except (sqlite3.Error, OverflowError) as exc:
        return Err(hrana_error_from_sqlite(exc))
    return Ok(
        StmtResult(
            cols=tuple(Col(name=column[0], decltype=None) for column in description),
            rows=tuple(rows) if stmt.want_rows else (),
            affected_row_count=affected,
            last_insert_rowid=(rowid_after if inserting and written else None),
            rows_read=len(rows),
            rows_written=written,
            query_duration_ms=(time.perf_counter() - started) * 1000.0,
        )
    )


def _mentions_autocommit(cond: Cond) -> bool:
    match cond:
        case IsAutocommitCond():
            return True
        case NotCond(cond=inner):
            return _mentions_autocommit(inner)
        case AndCond(conds=conds) | OrCond(conds=conds):
            return any(_mentions_autocommit(c) for c in conds)
        case _:
            return False


def split_statements(sql: str) -> list[str]:
    """Split a script at the semicolons that end statements.

    ``sqlite3.complete_statement`` decides where a statement ends, so semicolons in
    strings, comments and ``CREATE TRIGGER … BEGIN … END`` bodies do not split.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : index + 1]):
            statements.append(sql[start : index + 1])
            start = index + 1
    statements.append(sql[start:])
    return [s for s in statements if _has_statement(s)]


def execute_sequence(conn: sqlite3.Connection, sql: str) -> Ok[None] | Err[HranaError]:
    """Run semicolon-separated statements, stopping at the first error.

    Not ``executescript``: that commits an open transaction first, which would break a
    sequence sent inside an interactive transaction.
    """
    for statement in split_statements(sql):
        try:
            conn.execute(statement).close()
        except (sqlite3.Error, OverflowError) as exc:
            return Err(hrana_error_from_sqlite(exc))
    return Ok(None)


# --- describe ------------------------------------------------------------------------------

_EXPLAIN_COLS = ("addr", "opcode", "p1", "p2", "p3", "p4", "p5", "comment")
_EXPLAIN_QUERY_PLAN_COLS = ("id", "parent", "notused", "detail")
# Opcodes that make sqlite3_stmt_readonly() false besides a write transaction.
_WRITING_OPCODES = frozenset({"Vacuum", "JournalMode", "Checkpoint"})


def describe_sql(conn: sqlite3.Connection, sql: str) -> Ok[DescribeResult] | Err[HranaError]:
    """Describe a statement without running it: parameters, columns, read-only-ness.

    The statement is compiled through ``EXPLAIN`` (which never executes it) to check it
    and to read its bytecode: it is read-only when it opens no write transaction, as
    ``sqlite3_stmt_readonly`` decides. Columns are known for queries (compiled again as
    ``SELECT * FROM (…) LIMIT 0``, which stops before reading a row) and EXPLAIN; other
    statements, including ``… RETURNING``, report no columns.
    """
    scan = _scan(sql)
    if not scan.keywords:
        return Err(NO_STATEMENT)
    params = tuple(DescribeParam(name=name) for name in scan.params)
    nulls = _null_bindings(scan.params)
    first = scan.keywords[0]
    is_explain = first == "EXPLAIN"
    body = sql[: scan.end]
    try:
        if is_explain:
            conn.execute(body, nulls).close()
            names = (
                _EXPLAIN_QUERY_PLAN_COLS
                if scan.keywords[1:3] == ["QUERY", "PLAN"]
                else _EXPLAIN_COLS
            )
            return Ok(
                DescribeResult(
                    params=params,
                    cols=tuple(Col(name=n) for n in names),
                    is_explain=True,
                    is_readonly=True,
                )
            )
        program = conn.execute(f"EXPLAIN {body}", nulls).fetchall()
        is_readonly = not any(
            (op == "Transaction" and p2 != 0) or op in _WRITING_OPCODES
            for _, op, _, p2, *_ in program
        )
        cols: tuple[Col, ...] = ()
        if is_readonly and first in ("SELECT", "WITH", "VALUES"):
            cursor = conn.execute(f"SELECT * FROM ({body}\n) LIMIT 0", nulls)
            cols = tuple(Col(name=_top_level_name(d[0])) for d in cursor.description or ())
            cursor.close()
    except (sqlite3.Error, OverflowError) as exc:
        return Err(hrana_error_from_sqlite(exc))
    return Ok(DescribeResult(params=params, cols=cols, is_explain=False, is_readonly=is_readonly))


def _top_level_name(name: str) -> str:
    # A subquery renames duplicate columns "a", "a:1", …; the statement itself would not.
    return re.sub(r":[0-9]+\Z", "", name)


def _null_bindings(params: tuple[str | None, ...]) -> tuple[None, ...] | dict[str, None]:
    if params and all(p is not None and p[0] in ":@$" for p in params):
        return {p.lstrip(":@$"): None for p in params if p is not None}
    return (None,) * len(params)


@dataclass(slots=True)
class _Scan:
    keywords: list[str]  # the first few words, upper-cased
    params: tuple[str | None, ...]  # by index; None for an anonymous "?"
    end: int  # where the statement ends, before trailing semicolons and comments


_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]*")
_QUOTE_CLOSE = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _scan(sql: str) -> _Scan:
    """Tokenize just enough SQL to find parameters as SQLite numbers them.

    ``?`` takes the next number, ``?NNN`` takes NNN, and a name (``:x``, ``@x``, ``$x``)
    takes the next number the first time it appears and the same number after that.
    """
    names: dict[int, str | None] = {}
    by_name: dict[str, int] = {}
    count = 0
    keywords: list[str] = []
    end = 0
    i = 0
    n = len(sql)
    while i < n:
        char = sql[i]
        if char.isspace() or char == ";":
            i += 1
            continue
        if sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        if char in _QUOTE_CLOSE:
            closer = _QUOTE_CLOSE[char]
            i += 1
            while i < n:
                if sql[i] == closer:
                    if closer != "]" and sql.startswith(closer * 2, i):
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif char == "?":
            digits = re.match(r"[0-9]*", sql[i + 1 :])
            number_text = digits.group() if digits else ""
            i += 1 + len(number_text)
            if number_text:
                number = int(number_text)
                names.setdefault(number, f"?{number_text}")
                count = max(count, number)
            else:
                count += 1
                names[count] = None
        elif char in ":@$":
            match_ = _NAME_CHARS.match(sql, i + 1)
            name = char + (match_.group() if match_ else "")
            i += len(name)
            if name not in by_name:
                count += 1
                by_name[name] = count
                names[count] = name
        elif (word := _WORD.match(sql, i)) is not None:
            i = word.end()
            if len(keywords) < 3:
                keywords.append(word.group().upper())
        else:
            i += 1
        end = i
    params = tuple(names.get(index) for index in range(1, count + 1))
    return _Scan(keywords=keywords, params=params, end=min(end, n))


@functools.lru_cache(maxsize=1024)
def _has_statement(sql: str) -> bool:
    return _scan(sql).end > 0


def first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased ("" if it has none), skipping comments."""
    keywords = _scan(sql).keywords
    return keywords[0] if keywords else ""


@functools.lru_cache(maxsize=1024)
def _is_insert(sql: str) -> bool:
    """Whether ``sql`` is an INSERT (or REPLACE), the statements sqld reports
    ``last_insert_rowid`` for: SQLite's own value after it, as sqld sends it (an upsert
    that updated reports the one before, there as here)."""
    keywords = _scan(sql).keywords
    first = keywords[0] if keywords else ""
    if first in ("INSERT", "REPLACE"):
        return True
    return first == "WITH" and ("INSERT" in sql.upper() or "REPLACE" in sql.upper())


# --- batches and stream requests, on any engine -------------------------------------------


def roll_back(conn: WorkerConnection) -> None:
    """Roll back what the connection holds open, if anything (as closing a stream does)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _in_band(
    outcome: Ok[_T] | Err[HranaError], respond: Callable[[_T], StreamResponse]
) -> StreamResult:
    match outcome:
        case Ok(value):
            return StreamOk(response=respond(value))
        case Err(error):
            return StreamError(error=error)


@dataclass(frozen=True, slots=True, kw_only=True)
class HranaEngine(Generic[_C]):
    """Hrana's batches and stream requests over one SQL engine's statement functions.

    What differs between ``sqlite3`` and APSW is how one statement runs, how a sequence
    runs and how a statement is described; conditions, step bookkeeping and the request
    dispatch are the same, so they live here once. :data:`SQLITE3` is this module's
    engine; ``per_user_db.dev._engine.APSW`` the local server's.
    """

    execute_stmt: Callable[[_C, Stmt, Mapping[int, str] | None], Ok[StmtResult] | Err[HranaError]]
    execute_sequence: Callable[[_C, str], Ok[None] | Err[HranaError]]
    describe_sql: Callable[[_C, str], Ok[DescribeResult] | Err[HranaError]]

    def execute_batch(
        self,
        conn: _C,
        batch: Batch,
        stored: Mapping[int, str] | None = None,
        *,
        allow_is_autocommit: bool = True,
    ) -> Ok[BatchResult] | Err[HranaError]:
        """Run a batch step by step, skipping steps whose condition is false.

        Step errors are recorded per step; the batch continues (conditions decide what
        runs next). ``allow_is_autocommit=False`` (Hrana 2) rejects the ``is_autocommit``
        condition as a whole-request error.
        """
        for index, step in enumerate(batch.steps):
            if step.condition is None:
                continue
            if not allow_is_autocommit and _mentions_autocommit(step.condition):
                return Err(
                    HranaError(
                        message=f"batch step {index}: the is_autocommit condition needs "
                        "Hrana 3 (use /v3/pipeline)",
                        code="NOT_SUPPORTED",
                    )
                )
            problem = condition_problem(step.condition, index)
            if problem is not None:
                return Err(HranaError(message=problem, code="PROTOCOL_ERROR"))
        outcomes: list[bool | None] = []
        results: list[StmtResult | None] = []
        errors: list[HranaError | None] = []
        for step in batch.steps:
            if step.condition is not None and not evaluate_condition(
                step.condition, outcomes, is_autocommit=not conn.in_transaction
            ):
                outcomes.append(None)
                results.append(None)
                errors.append(None)
                continue
            match self.execute_stmt(conn, step.stmt, stored):
                case Ok(result):
                    outcomes.append(True)
                    results.append(result)
                    errors.append(None)
                case Err(error):
                    outcomes.append(False)
                    results.append(None)
                    errors.append(error)
        return Ok(BatchResult(step_results=tuple(results), step_errors=tuple(errors)))

    def run_stream_request(
        self, conn: _C, request: StreamRequest, stored: dict[int, str], *, version: int = 3
    ) -> StreamResult:
        """Run one Hrana stream request on ``conn`` (inside :meth:`SqliteWorker.run`).

        ``stored`` is the stream's ``store_sql`` table, updated in place. ``close`` rolls
        back what the stream left open, as closing a stream does on a server.
        """
        match request:
            case ExecuteRequest(stmt=stmt):
                ran = self.execute_stmt(conn, stmt, stored)
                return _in_band(ran, lambda r: ExecuteResponse(result=r))
            case BatchRequest(batch=batch):
                batched = self.execute_batch(conn, batch, stored, allow_is_autocommit=version >= 3)
                return _in_band(batched, lambda r: BatchResponse(result=r))
            case SequenceRequest(sql=sql, sql_id=sql_id) | DescribeRequest(sql=sql, sql_id=sql_id):
                match resolve_sql(sql, sql_id, stored):
                    case Err(error):
                        return StreamError(error=error)
                    case Ok(text):
                        pass
                if isinstance(request, SequenceRequest):
                    sequenced = self.execute_sequence(conn, text)
                    return _in_band(sequenced, lambda _: SequenceResponse())
                described = self.describe_sql(conn, text)
                return _in_band(described, lambda r: DescribeResponse(result=r))
            case StoreSqlRequest(sql_id=sql_id, sql=sql):
                if sql_id in stored:
                    return StreamError(
                        error=HranaError(
                            message=f"SQL id {sql_id} is already stored on this stream; "
                            "close_sql it first",
                            code="SQL_EXISTS",
                        )
                    )
                stored[sql_id] = sql
                return StreamOk(response=StoreSqlResponse())
            case CloseSqlRequest(sql_id=sql_id):
                stored.pop(sql_id, None)
                return StreamOk(response=CloseSqlResponse())
            case CloseRequest():
                roll_back(conn)
                return StreamOk(response=CloseResponse())
            case GetAutocommitRequest():
                if version < 3:
                    return StreamError(
                        error=HranaError(
                            message="get_autocommit needs Hrana 3; use /v3/pipeline",
                            code="NOT_SUPPORTED",
                        )
                    )
                return StreamOk(
                    response=GetAutocommitResponse(is_autocommit=not conn.in_transaction)
                )

    def run_stream_requests(
        self,
        conn: _C,
        requests: Sequence[StreamRequest],
        stored: dict[int, str],
        *,
        version: int = 3,
    ) -> tuple[StreamResult, ...]:
        """Run a pipeline's requests in order; a failing request does not stop the rest."""
        return tuple(self.run_stream_request(conn, r, stored, version=version) for r in requests)


SQLITE3: HranaEngine[sqlite3.Connection] = HranaEngine(
    execute_stmt=execute_stmt, execute_sequence=execute_sequence, describe_sql=describe_sql
)
"""The client's local transport's engine: Python's ``sqlite3``."""

execute_batch = SQLITE3.execute_batch
run_stream_request = SQLITE3.run_stream_request
run_stream_requests = SQLITE3.run_stream_requests
