"""Reading a migrations folder from disk, and checking its SQL with sqlglot.

The parsing and structural checks are pure (:mod:`per_user_db.core._migrations`);
this module only reads the files and supplies the SQL checker, which lives out of the
core because sqlglot imports logging, threading and socket.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from .core._migrations import (
    JOURNAL_PATH,
    JournalError,
    MigrationFileError,
    MigrationSet,
    parse_migrations,
)

__all__ = ["check_sqlite_statement", "load_migrations", "migrations_from_texts"]

_TRIGGER = re.compile(r"^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b", re.I)


def check_sqlite_statement(sql: str) -> str | None:
    """``None`` if ``sql`` is exactly one statement sqlglot parses as SQLite, else why not.

    sqlglot splits ``CREATE TRIGGER … BEGIN …; END`` at the inner semicolons, so a
    trigger is accepted when SQLite itself calls the text one complete statement.
    """
    if _TRIGGER.match(sql):
        text = sql if sql.rstrip().endswith(";") else sql + ";"
        return None if sqlite3.complete_statement(text) else "incomplete CREATE TRIGGER"
    # sqlglot logs a warning when it falls back to an opaque Command: not our reader's news.
    sqlglot_logger = logging.getLogger("sqlglot")
    previous = sqlglot_logger.level
    sqlglot_logger.setLevel(logging.ERROR)
    try:
        expressions = sqlglot.parse(sql, read="sqlite")
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        description = first.get("description") or "does not parse"
        return f"SQL syntax error{where}: {description}"
    finally:
        sqlglot_logger.setLevel(previous)
    # A trailing comment parses as a lone Semicolon; a trigger body's END as EndStatement.
    ignorable = (exp.EndStatement, exp.Semicolon)
    found = [e for e in expressions if e is not None and not isinstance(e, ignorable)]
    if len(found) != 1:
        return (
            f"must hold exactly one SQL statement, found {len(found)}; separate statements "
            "with a '--> statement-breakpoint' line"
        )
    return None


def migrations_from_texts(journal_text: str, files: dict[str, str]) -> MigrationSet:
    """Parse and validate a migration set given as texts (SQL checked with sqlglot)."""
    return parse_migrations(journal_text, files, check_statement=check_sqlite_statement)


def load_migrations(path: str | Path) -> MigrationSet:
    """Read a drizzle-kit migrations folder: ``meta/_journal.json`` and its ``.sql`` files.

    Raises a :class:`~per_user_db.MigrationFileError` subclass naming the file (and for
    SQL, the statement number and the parser's message).
    """
    folder = Path(path)
    journal = folder / JOURNAL_PATH
    try:
        journal_text = journal.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise JournalError(f"not found in {folder}", file=JOURNAL_PATH) from None
    except UnicodeDecodeError as exc:
        raise JournalError(f"not UTF-8 ({exc.reason})", file=JOURNAL_PATH) from None
    files: dict[str, str] = {}
    for sql_file in sorted(folder.glob("*.sql")):
        try:
            # Bytes, not text mode: drizzle hashes the file as written, newlines included.
            files[sql_file.name] = sql_file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MigrationFileError(f"not UTF-8 ({exc.reason})", file=sql_file.name) from None
    return migrations_from_texts(journal_text, files)
