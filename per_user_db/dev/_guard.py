"""What a client's SQL may do on the local Turso: one database, and nothing around it.

Every connection the server opens for a client (APSW's, :mod:`._engine`) gets
:func:`guard_connection`: a SQLite authorizer (checked by the engine when a statement is
prepared, so no SQL can talk its way around it) and a limit of zero attached databases.
It refuses

* ``ATTACH``/``DETACH`` (another user's file, or a new file anywhere) and so also
  ``VACUUM INTO``, which attaches its target first;
* ``load_extension`` and ``fts3_tokenizer`` (the one returns a memory pointer, the other
  loads code);
* every ``PRAGMA`` outside sqld's allow-list (below), in statements and as table-valued
  functions (``pragma_table_info``) alike, and ``database_list`` (the server's absolute
  path); settings such as ``journal_mode``, ``synchronous`` or ``query_only`` may be read
  but not changed, and ``writable_schema`` not at all;
* ``busy_timeout`` longer than the server's own (shorter is allowed: the server itself
  turns the wait off and on);
* for a read-only token, every pragma but the reading ones. Its connection runs with
  ``query_only`` on, which makes the engine refuse every write with ``SQLITE_READONLY``;
  since no client may change ``query_only``, nothing turns it off.

Where this differs from sqld: sqld classifies statements before running them and
refuses a read-only token's write with HTTP 403 for the whole request; here the engine
refuses the statement in-band. sqld allows ``ATTACH`` of another namespace, read-only,
with an attach permission; the local Turso has no such permission and refuses it.

A refused statement fails with SQLite's ``SQLITE_AUTH`` ("not authorized"), a refused
function with an error at its name while compiling (``SQL_INPUT_ERROR`` "not authorized
to use function", as sqld names such errors: :mod:`._engine`); either travels as an
ordinary in-band error, and the connection and stream stay usable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import apsw

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DENIED_FUNCTIONS",
    "READ_PRAGMAS",
    "SETTING_PRAGMAS",
    "WRITE_PRAGMAS",
    "guard_connection",
]

# Mirrors sqld's allow-list (libsql-server/src/query_analysis.rs, StmtKind::pragma_kind,
# libsql commit f8fb14f3638e): the pragmas it classifies as reads, as writes, and as
# writes allowed only without an argument (reading a setting). Everything else is refused
# there as an "unsupported statement", and here by the authorizer.
READ_PRAGMAS = frozenset(
    {
        "table_list",
        "index_list",
        "table_info",
        "table_xinfo",
        "index_info",
        "index_xinfo",
        "pragma_list",
        "compile_options",
        "function_list",
        "module_list",
        "encoding",
        "schema_version",
    }
)
"""Pragmas any token may run. sqld also lists ``database_list`` here; the local Turso
refuses it, since it shows the server's absolute path (sqld's too, unfiltered)."""

WRITE_PRAGMAS = frozenset(
    {
        "defer_foreign_keys",
        "foreign_keys",
        "foreign_key_list",
        "foreign_key_check",
        "collation_list",
        "data_version",
        "freelist_count",
        "integrity_check",
        "legacy_file_format",
        "page_count",
        "quick_check",
        "stats",
        "user_version",
    }
)
"""Pragmas a read-write token may run, read or set (sqld wants the Write permission even
to read them)."""

SETTING_PRAGMAS = frozenset(
    {
        "analysis_limit",
        "application_id",
        "auto_vacuum",
        "automatic_index",
        "busy_timeout",
        "cache_size",
        "cache_spill",
        "cell_size_check",
        "checkpoint_fullfsync",
        "fullfsync",
        "hard_heap_limit",
        "journal_mode",
        "journal_size_limit",
        "legacy_alter_table",
        "locking_mode",
        "max_page_count",
        "mmap_size",
        "page_size",
        "query_only",
        "read_uncommitted",
        "recursive_triggers",
        "reverse_unordered_selects",
        "secure_delete",
        "soft_heap_limit",
        "synchronous",
        "temp_store",
        "threads",
        "trusted_schema",
        "wal_autocheckpoint",
    }
)
"""Settings a read-write token may read but not change (no argument), as in sqld. So
``journal_mode``, ``synchronous``, ``locking_mode`` and ``query_only`` (a read-only
token's lock) stay the server's; ``writable_schema`` and ``temp_store_directory``, not
listed at all, are refused outright."""

DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})

_READS = frozenset({apsw.SQLITE_READ, apsw.SQLITE_SELECT, apsw.SQLITE_FUNCTION})


def _authorizer(
    read_only: bool,
) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    def authorize(
        action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
    ) -> int:
        if action in _READS:
            if action == apsw.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
                return apsw.SQLITE_DENY
            return apsw.SQLITE_OK
        if action == apsw.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in READ_PRAGMAS or (name == "busy_timeout" and _shorter_wait(arg2)):
                return apsw.SQLITE_OK
            if read_only:
                return apsw.SQLITE_DENY
            if name in WRITE_PRAGMAS or (name in SETTING_PRAGMAS and arg2 is None):
                return apsw.SQLITE_OK
            return apsw.SQLITE_DENY
        if action in (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
            return apsw.SQLITE_DENY
        return apsw.SQLITE_OK

    return authorize


BUSY_TIMEOUT_CEILING_MS = 5000
"""The longest busy wait a connection may set itself (the server's own default): the
server turns the wait off while it runs a statement on its event loop's thread, and
back on for its worker thread; a client may shorten it, never lengthen it."""


def _shorter_wait(argument: str | None) -> bool:
    return (
        argument is not None and argument.isdecimal() and int(argument) <= (BUSY_TIMEOUT_CEILING_MS)
    )


def guard_connection(*, read_only: bool) -> Callable[[apsw.Connection], None]:
    """What to do to a client's connection right after opening it (on its thread)."""
    authorize = _authorizer(read_only)

    def guard(conn: apsw.Connection) -> None:
        conn.set_authorizer(authorize)
        conn.limit(apsw.SQLITE_LIMIT_ATTACHED, 0)

    return guard
