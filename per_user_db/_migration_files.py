"""Reading a migrations folder from disk, and checking its SQL with sqlglot.

The parsing and structural checks are pure (:mod:`per_user_db.core._migrations`);
this module only reads the files and supplies the SQL checker, which lives out of the
core because sqlglot imports logging, threading and socket.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from .core._migrations import (
    DEFAULT_VERSION_TABLE,
    JOURNAL_PATH,
    JournalError,
    MigrationFileError,
    MigrationSet,
    parse_migrations,
)

__all__ = ["add_migration", "check_sqlite_statement", "load_migrations", "migrations_from_texts"]

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


def migrations_from_texts(
    journal_text: str, files: dict[str, str], *, version_table: str = DEFAULT_VERSION_TABLE
) -> MigrationSet:
    """Parse and validate a migration set given as texts (SQL checked with sqlglot)."""
    parsed = parse_migrations(journal_text, files, check_statement=check_sqlite_statement)
    return replace(parsed, version_table=version_table)


def load_migrations(
    path: str | Path, *, version_table: str = DEFAULT_VERSION_TABLE
) -> MigrationSet:
    """Read a drizzle-kit migrations folder: ``meta/_journal.json`` and its ``.sql`` files.

    Raises a :class:`~per_user_db.MigrationFileError` subclass naming the file (and for
    SQL, the statement number and the parser's message). ``version_table`` names the
    table that records them (drizzle's by default).
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
    return migrations_from_texts(journal_text, files, version_table=version_table)


_NEW_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")
NEW_MIGRATION_TEMPLATE = (
    "-- Write this migration's SQL here: one statement per part, parts separated by a line\n"
    "-- holding only: --> statement-breakpoint\n"
)


def add_migration(folder: str | Path, name: str, *, now_ms: int) -> Path:
    """Add ``NNNN_<name>.sql`` and its journal entry to ``folder``; returns the new file.

    ``when`` is ``now_ms``, or one more than the newest entry if the clock is behind it,
    so entries stay strictly increasing. The file starts with a comment only: it must get
    statements before the set loads again.
    """
    if not _NEW_NAME.fullmatch(name):
        raise ValueError(f"migration name must be lowercase letters, digits and '_', got {name!r}")
    root = Path(folder)
    journal_path = root / JOURNAL_PATH
    if journal_path.exists():
        try:
            document = json.loads(journal_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise JournalError(f"not valid JSON ({exc})", file=JOURNAL_PATH) from None
    else:
        document = {"version": "7", "dialect": "sqlite", "entries": []}
    entries = document.get("entries")
    if not isinstance(document, dict) or not isinstance(entries, list):
        raise JournalError("'entries' must be a list", file=JOURNAL_PATH)
    newest = max((e.get("when", 0) for e in entries if isinstance(e, dict)), default=0)
    idx = len(entries)
    tag = f"{idx:04d}_{name}"
    target = root / f"{tag}.sql"
    if target.exists():
        raise MigrationFileError("already exists", file=target.name)
    entries.append(
        {
            "idx": idx,
            "version": "6",
            "when": max(now_ms, newest + 1),
            "tag": tag,
            "breakpoints": True,
        }
    )
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(NEW_MIGRATION_TEMPLATE, encoding="utf-8")
    temporary = journal_path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(journal_path)
    return target
