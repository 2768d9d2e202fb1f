"""The local Turso's SQL engine: Hrana requests run on APSW and answered as sqld answers.

The server's connections are APSW's (``apsw.Connection``, SQLite's C API with a bundled
current SQLite), not Python's ``sqlite3``, because only the C API can answer like sqld:

* result columns carry their declared type (``cols[].decltype``, which Turso's clients
  turn into column types); ``sqlite3`` has no ``sqlite3_column_decltype``;
* ``affected_row_count`` is SQLite's ``changes()`` for every statement that wrote,
  ``WITH … INSERT`` included (``sqlite3`` reports ``rowcount`` -1 for it), and 0 for one
  that did not;
* errors carry SQLite's primary result code and, for an error found while compiling a
  statement, the byte offset of the token at fault: what sqld's code strings are made of.

It also keeps each connection's compiled statements (APSW's statement cache), so a
repeated statement is neither parsed nor authorized again.

Batches, conditions and the stream requests are those of
:class:`~per_user_db._transports._hrana_sqlite.HranaEngine`, shared with the client's ``sqlite3``
transport; this module supplies the three functions that touch SQLite
(:func:`execute_stmt`, :func:`execute_sequence`, :func:`describe_sql`) and the connection
they run on (:func:`connect`, opened by a
:class:`~per_user_db._transports._sqlite.SqliteWorker`).

Error codes, as sqld (libsql-server, libsql commit f8fb14f3638e) puts them in a Hrana error
(``{"message", "code"}``, nothing else: libsql-hrana ``proto.rs`` ``Error``):

* ``hrana/stmt.rs`` ``proto_stmt_to_query``: text with no statement is
  ``SQL_NO_STATEMENT``; a second statement ``SQL_MANY_STATEMENTS``; text its parser
  rejects ``SQL_PARSE_ERROR`` (here: SQLite's "syntax error", "incomplete input" and
  "unrecognized token" while compiling).
* ``query.rs`` ``Params::bind``: a parameter with no value (a named one included: never
  NULL), or more values than parameters, is ``ARGS_INVALID``.
* ``hrana/stmt.rs`` ``stmt_error_from_sqld_error`` and ``sqlite_error_code``: every other
  SQLite error is ``SQLITE_`` + the name of its *primary* code (:data:`SQLD_CODES`): a
  UNIQUE violation is ``SQLITE_CONSTRAINT``, never ``SQLITE_CONSTRAINT_UNIQUE``; a read-only
  refusal ``SQLITE_READONLY``; a held lock ``SQLITE_BUSY``; an interrupt
  ``SQLITE_INTERRUPT``; an authorizer refusal ``SQLITE_AUTH``. The extended code sqld
  reads (``connection/program.rs``, ``RusqliteErrorExtended``) is dropped there and sent
  nowhere; npm ``@libsql/client`` 0.18 leaves ``extendedCode`` and ``rawCode`` undefined
  for remote databases (``hrana.js`` ``mapHranaError``).
* The primary codes rusqlite has no name for (``libsql-ffi`` ``Error::new``:
  ``SQLITE_ERROR``, ``SQLITE_EMPTY``, ``SQLITE_FORMAT``, ``SQLITE_NOTICE``,
  ``SQLITE_WARNING``) are ``SQLITE_UNKNOWN``, so a plain runtime ``SQLITE_ERROR``
  ("malformed JSON", "no such table" has no offset) is ``SQLITE_UNKNOWN`` on Turso.
* Except while compiling: rusqlite's ``error_with_offset`` (``vendored/rusqlite``
  ``error.rs``, ``modern_sqlite``) turns such an error that names a token
  (``sqlite3_error_offset`` >= 0: "no such column", "no such function") into
  ``SQL_INPUT_ERROR``.

Messages follow sqld's too (``StmtError``'s ``Display``): "SQLite error: …",
"SQL input error: … (at offset N)", "SQL string could not be parsed: …", "Arguments do
not match SQL parameters: …". The client's checks read codes by prefix (``SQLITE_BUSY``,
``SQLITE_LOCKED``, ``SQLITE_READONLY``, ``SQLITE_CONSTRAINT``), which both the extended
names of its local ``sqlite3`` transport and these primary ones satisfy.

One caution comes with APSW: its SQLite is a second copy of SQLite in the server's
process (Python's ``sqlite3`` links its own), and two copies do not see each other's
POSIX locks (sqlite.org/howtocorrupt.html, 2.2.1). A read-write ``sqlite3`` connection
to a served file, opened in the same process and closed, believes it was the file's last
connection: it checkpoints and deletes the WAL the server is still writing to, and the
server's later writes are lost. Nothing in this package does that; a test that peeks at
a served file opens it read-only (``tests/conftest.py`` ``read_only``).

Where this still differs from sqld: sqld parses the whole text with its own parser before
SQLite sees it, so a sequence with a syntax error in its third statement runs nothing;
here the first two run. The offsets are those of the SQLite APSW bundles, which may name
a token in a few messages where libsql's older SQLite does not.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Final, TypeAlias, cast

import apsw

from per_user_db._transports._hrana_sqlite import (
    NO_STATEMENT,
    HranaEngine,
    _bindings,
    _has_statement,
    _is_insert,
    _scan,
    roll_back,
    split_statements,
    statement_sql,
)
from per_user_db._transports._sqlite import SqliteWorker
from per_user_db.core._hrana import Col, DescribeParam, DescribeResult, HranaError, StmtResult
from per_user_db.core._result import Err, Ok

if TYPE_CHECKING:
    from collections.abc import Mapping

    from per_user_db.core._hrana import Stmt, StreamRequest, StreamResult, Value

__all__ = [
    "APSW",
    "SQLD_CODES",
    "ServerWorker",
    "connect",
    "describe_sql",
    "execute_batch",
    "execute_sequence",
    "execute_stmt",
    "hrana_error_from_apsw",
    "run_and_reset",
    "run_stream_request",
    "run_stream_requests",
    "sqld_code",
]


ServerWorker: TypeAlias = SqliteWorker[apsw.Connection]
"""A worker of the local server: one APSW connection (from :func:`connect`) on its thread."""


def connect(target: str, *, read_only: bool, busy_timeout: float, create: bool) -> apsw.Connection:
    """Open a connection as the server's workers need it (a
    :class:`~per_user_db._transports._sqlite.Connector`): autocommit, foreign keys on,
    ``query_only`` for ``read_only``, waiting up to ``busy_timeout`` seconds for a lock.

    Raises ``apsw.CantOpenError`` for a missing file unless ``create``.
    """
    flags = apsw.SQLITE_OPEN_READWRITE | (apsw.SQLITE_OPEN_CREATE if create else 0)
    conn = apsw.Connection(target, flags=flags)
    try:
        conn.set_busy_timeout(round(busy_timeout * 1000))
        conn.execute("PRAGMA foreign_keys = ON")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


# --- errors --------------------------------------------------------------------------------

SQLD_CODES: Final[Mapping[int, str]] = {
    apsw.SQLITE_INTERNAL: "SQLITE_INTERNAL",
    apsw.SQLITE_PERM: "SQLITE_PERM",
    apsw.SQLITE_ABORT: "SQLITE_ABORT",
    apsw.SQLITE_BUSY: "SQLITE_BUSY",
    apsw.SQLITE_LOCKED: "SQLITE_LOCKED",
    apsw.SQLITE_NOMEM: "SQLITE_NOMEM",
    apsw.SQLITE_READONLY: "SQLITE_READONLY",
    apsw.SQLITE_INTERRUPT: "SQLITE_INTERRUPT",
    apsw.SQLITE_IOERR: "SQLITE_IOERR",
    apsw.SQLITE_CORRUPT: "SQLITE_CORRUPT",
    apsw.SQLITE_NOTFOUND: "SQLITE_NOTFOUND",
    apsw.SQLITE_FULL: "SQLITE_FULL",
    apsw.SQLITE_CANTOPEN: "SQLITE_CANTOPEN",
    apsw.SQLITE_PROTOCOL: "SQLITE_PROTOCOL",
    apsw.SQLITE_SCHEMA: "SQLITE_SCHEMA",
    apsw.SQLITE_TOOBIG: "SQLITE_TOOBIG",
    apsw.SQLITE_CONSTRAINT: "SQLITE_CONSTRAINT",
    apsw.SQLITE_MISMATCH: "SQLITE_MISMATCH",
    apsw.SQLITE_MISUSE: "SQLITE_MISUSE",
    apsw.SQLITE_NOLFS: "SQLITE_NOLFS",
    apsw.SQLITE_AUTH: "SQLITE_AUTH",
    apsw.SQLITE_RANGE: "SQLITE_RANGE",
    apsw.SQLITE_NOTADB: "SQLITE_NOTADB",
}
"""SQLite's primary result codes by the name sqld sends for them (libsql-server
``hrana/stmt.rs`` ``sqlite_error_code`` over ``libsql-ffi`` ``Error::new``); any other
code is ``SQLITE_UNKNOWN``."""

_UNKNOWN = "SQLITE_UNKNOWN"
_PARSE_MARKERS = ("syntax error", "incomplete input", "unrecognized token")


def sqld_code(result: int) -> str | None:
    """The code sqld sends for an SQLite result code, primary or extended; None for the
    codes rusqlite calls ``Unknown`` (``SQLITE_ERROR`` among them)."""
    return SQLD_CODES.get(result & 0xFF)


def hrana_error_from_apsw(exc: apsw.Error, *, compiling: bool = False) -> HranaError:
    """The Hrana error sqld would send for an SQLite error raised by APSW.

    ``compiling``: the statement had not started running (an error in
    ``sqlite3_prepare``), where sqld tells parse errors and errors at a token apart.
    """
    message = str(exc)
    result: int = getattr(exc, "result", apsw.SQLITE_ERROR)
    code = sqld_code(result)
    if code is None and compiling:
        if any(marker in message for marker in _PARSE_MARKERS):
            return HranaError(
                message=f"SQL string could not be parsed: {message}", code="SQL_PARSE_ERROR"
            )
        offset: int = getattr(exc, "error_offset", -1)
        if offset >= 0:
            return HranaError(
                message=f"SQL input error: {message} (at offset {offset})", code="SQL_INPUT_ERROR"
            )
    return HranaError(message=f"SQLite error: {message}", code=code or _UNKNOWN)


def _args_invalid(detail: str) -> HranaError:
    return HranaError(
        message=f"Arguments do not match SQL parameters: {detail}", code="ARGS_INVALID"
    )


_MANY_STATEMENTS = HranaError(
    message="SQL string contains more than one statement; use a batch or a sequence for several",
    code="SQL_MANY_STATEMENTS",
)


# --- one statement -------------------------------------------------------------------------


class _Trace:
    """The exec tracer of one statement's cursor. APSW calls it once SQLite has compiled
    and bound the statement, before it runs: it keeps the result columns (their declared
    types are gone once the statement has finished) and refuses to run anything when
    the text holds a second statement, which APSW would otherwise run too."""

    __slots__ = ("cols", "sql")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.cols: tuple[Col, ...] | None = None

    def __call__(self, cursor: apsw.Cursor, statement: str, bindings: object) -> bool:
        if self.cols is not None:
            return True  # a trailing comment: APSW compiles it to nothing and runs nothing
        # APSW hands over the statement's own text, up to where the next one starts.
        rest = self.sql[len(statement) :]
        if rest and _has_statement(rest):
            return False
        self.cols = _columns(cursor.get_description())
        return True


@functools.lru_cache(maxsize=1024)
def _columns(description: tuple[tuple[str, str | None], ...]) -> tuple[Col, ...]:
    # Cached: building the columns costs more than running a short statement, and the
    # same statements come back again and again.
    return tuple(Col(name=name, decltype=decl) for name, decl in description)


_Rows = list[tuple["Value", ...]]


def _run(
    conn: apsw.Connection, sql: str, bindings: tuple[Value, ...] | dict[str, Value] | None
) -> tuple[tuple[Col, ...], _Rows] | HranaError:
    """Run one statement to its end: its columns and rows, or the error sqld would send."""
    trace = _Trace(sql)
    cursor = conn.cursor()
    cursor.exec_trace = trace
    try:
        rows = cast("_Rows", cursor.execute(sql, bindings).fetchall())
    except apsw.ExecTraceAbort:
        return _MANY_STATEMENTS
    except KeyError as exc:  # APSW: a named parameter missing from the mapping
        return _args_invalid(f"value for parameter {_parameter(sql, exc)} not found")
    except (apsw.BindingsError, OverflowError) as exc:
        return _args_invalid(str(exc))
    except apsw.Error as exc:
        if not hasattr(exc, "result"):
            raise  # APSW's own (a closed connection, a thread clash): a bug here, not SQL
        return hrana_error_from_apsw(exc, compiling=trace.cols is None)
    return trace.cols or (), rows


def _parameter(sql: str, missing: KeyError) -> str:
    # APSW names the parameter without its prefix character; the client wrote it with one.
    key = str(missing.args[0]) if missing.args else ""
    return next((p for p in _scan(sql).params if p is not None and p[1:] == key), key)


def execute_stmt(
    conn: apsw.Connection, stmt: Stmt, stored: Mapping[int, str] | None = None
) -> Ok[StmtResult] | Err[HranaError]:
    """Run one statement; call it inside ``SqliteWorker.run``."""
    match statement_sql(stmt, stored):
        case Err() as refused:
            return refused
        case Ok(sql):
            pass
    started = time.perf_counter()
    changes_before = conn.total_changes()
    ran = _run(conn, sql, _bindings(stmt))
    if isinstance(ran, HranaError):
        return Err(ran)
    cols, rows = ran
    written = conn.total_changes() - changes_before
    return Ok(
        StmtResult(
            cols=cols,
            rows=tuple(rows) if stmt.want_rows else (),
            # changes() counts the last INSERT, UPDATE or DELETE to finish; a statement
            # that wrote nothing (a query) would read an older one's count, so 0.
            affected_row_count=conn.changes() if written else 0,
            last_insert_rowid=conn.last_insert_rowid() if written and _is_insert(sql) else None,
            rows_read=len(rows),
            rows_written=written,
            query_duration_ms=(time.perf_counter() - started) * 1000.0,
        )
    )


def execute_sequence(conn: apsw.Connection, sql: str) -> Ok[None] | Err[HranaError]:
    """Run semicolon-separated statements, stopping at the first error.

    One at a time, not APSW's ``execute`` of the whole text: each error must know
    whether its statement had started (see :func:`hrana_error_from_apsw`).
    """
    for statement in split_statements(sql):
        ran = _run(conn, statement, None)
        if isinstance(ran, HranaError):
            return Err(ran)
    return Ok(None)


def describe_sql(conn: apsw.Connection, sql: str) -> Ok[DescribeResult] | Err[HranaError]:
    """Describe a statement without running it, as sqld does
    (``connection_core.rs`` ``describe``): its parameters, every result column with its
    declared type (``… RETURNING`` and pragmas included), and SQLite's own
    ``sqlite3_stmt_isexplain`` and ``sqlite3_stmt_readonly``.

    The statement is compiled and bound to NULLs, then its tracer stops it before its
    first step.
    """
    statements = split_statements(sql)
    if not statements:
        return Err(NO_STATEMENT)
    if len(statements) > 1:
        return Err(_MANY_STATEMENTS)
    params = _scan(statements[0]).params
    described: list[DescribeResult] = []

    def describe(cursor: apsw.Cursor, statement: str, bindings: object) -> bool:
        if not described:
            described.append(
                DescribeResult(
                    params=tuple(DescribeParam(name=name) for name in params),
                    cols=_columns(cursor.get_description()),
                    is_explain=cursor.is_explain > 0,
                    is_readonly=cursor.is_readonly,
                )
            )
        return False  # never run it

    cursor = conn.cursor()
    cursor.exec_trace = describe
    try:
        cursor.execute(statements[0], (None,) * len(params))
    except apsw.ExecTraceAbort:
        pass
    except (apsw.BindingsError, OverflowError) as exc:
        return Err(_args_invalid(str(exc)))
    except apsw.Error as exc:
        if not hasattr(exc, "result"):
            raise
        return Err(hrana_error_from_apsw(exc, compiling=True))
    return Ok(described[0]) if described else Err(NO_STATEMENT)


APSW: HranaEngine[apsw.Connection] = HranaEngine(
    execute_stmt=execute_stmt, execute_sequence=execute_sequence, describe_sql=describe_sql
)
"""The local server's engine."""

execute_batch = APSW.execute_batch
run_stream_request = APSW.run_stream_request
run_stream_requests = APSW.run_stream_requests


def run_and_reset(
    conn: apsw.Connection,
    requests: tuple[StreamRequest, ...],
    *,
    version: int,
    read_only: bool,
) -> tuple[tuple[StreamResult, ...], bool]:
    """Run a one-shot pipeline, then leave the connection as a new one would be; the
    flag says whether that worked, so the connection may serve the next pipeline."""
    ran = run_stream_requests(conn, requests, {}, version=version)
    try:
        roll_back(conn)
        if not read_only:  # a read-only token cannot change the pragma in the first place
            conn.execute("PRAGMA foreign_keys = ON")
        temporary = conn.execute("SELECT count(*) FROM temp.sqlite_master").get
    except apsw.Error:
        return ran, False
    return ran, temporary == 0  # temp tables, views or triggers must not reach the next
