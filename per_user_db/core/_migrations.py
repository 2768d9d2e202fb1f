"""Migration files in drizzle-kit's folder layout, parsed from text (no file access).

A migrations folder holds ``NNNN_<tag>.sql`` files, whose statements are separated by
``--> statement-breakpoint``, and ``meta/_journal.json``::

    {"version": "7", "dialect": "sqlite",
     "entries": [{"idx": 0, "version": "6", "when": 1777014726134,
                  "tag": "0000_init", "breakpoints": true}]}

A migration's ``hash`` is the SHA-256 hex digest of its file's text, as drizzle
computes it, so the rows we write to ``__drizzle_migrations`` agree with the rows a
drizzle migrator writes. The journal's ``when`` (milliseconds) is the migration's
identity in that table.

:func:`parse_migrations` validates structure; checking that each statement is valid
SQL needs a parser that does not belong in the pure core, so it is passed in as
``check_statement`` (the shell passes sqlglot's).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "BREAKPOINT",
    "DEFAULT_VERSION_TABLE",
    "JOURNAL_PATH",
    "DuplicateTag",
    "JournalError",
    "Migration",
    "MigrationFileError",
    "MigrationSet",
    "MissingMigrationFile",
    "NonIncreasingWhen",
    "StatementCheck",
    "StatementError",
    "UnlistedMigrationFile",
    "file_hash",
    "parse_migrations",
    "split_statements",
]

BREAKPOINT = "--> statement-breakpoint"
DEFAULT_VERSION_TABLE = "__drizzle_migrations"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
JOURNAL_PATH = "meta/_journal.json"
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

StatementCheck = Callable[[str], str | None]
"""Returns ``None`` for exactly one valid statement, otherwise a message saying why not."""


class MigrationFileError(ValueError):
    """A migrations folder that cannot be used; ``file`` names the offending file."""

    def __init__(self, message: str, *, file: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file


class JournalError(MigrationFileError):
    """``meta/_journal.json`` is not a well-formed drizzle journal."""


class DuplicateTag(JournalError):
    """Two journal entries have the same tag."""


class NonIncreasingWhen(JournalError):
    """Journal ``when`` values must increase strictly: they identify migrations."""


class MissingMigrationFile(MigrationFileError):
    """The journal lists a migration whose ``.sql`` file does not exist."""


class UnlistedMigrationFile(MigrationFileError):
    """A ``.sql`` file exists that the journal does not list (it would never run)."""


class StatementError(MigrationFileError):
    """A statement is not exactly one valid SQL statement."""

    def __init__(self, message: str, *, file: str, statement: int) -> None:
        super().__init__(f"statement {statement}: {message}", file=file)
        self.statement = statement


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One migration: its journal identity, its statements and its content hash."""

    idx: int
    tag: str
    when: int
    statements: tuple[str, ...]
    hash: str
    sql: str = field(repr=False)
    breakpoints: bool = True

    @property
    def filename(self) -> str:
        return f"{self.tag}.sql"


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationSet:
    """An ordered, validated set of migrations plus the journal that lists them."""

    migrations: tuple[Migration, ...]
    journal_version: str = "7"
    dialect: str = "sqlite"
    version_table: str = DEFAULT_VERSION_TABLE
    """Where applied migrations are recorded: drizzle's table by default. A second,
    independent set in the same database (a library's own tables) needs its own."""

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.version_table):
            raise ValueError(
                f"version_table must be a plain SQL identifier, got {self.version_table!r}"
            )

    def __iter__(self) -> Iterator[Migration]:
        return iter(self.migrations)

    def __len__(self) -> int:
        return len(self.migrations)

    @property
    def head(self) -> Migration | None:
        return self.migrations[-1] if self.migrations else None

    @property
    def fingerprint(self) -> str:
        """A stable digest of the whole ordered set: changes when any file or entry does."""
        digest = hashlib.sha256(self.version_table.encode())
        for m in self.migrations:
            digest.update(f"{m.idx}\0{m.tag}\0{m.when}\0{m.hash}\n".encode())
        return digest.hexdigest()

    def journal_json(self) -> str:
        """The journal, as drizzle-kit writes it (2-space indented JSON)."""
        entries = [
            {
                "idx": m.idx,
                "version": "6",
                "when": m.when,
                "tag": m.tag,
                "breakpoints": m.breakpoints,
            }
            for m in self.migrations
        ]
        document = {"version": self.journal_version, "dialect": self.dialect, "entries": entries}
        return json.dumps(document, indent=2) + "\n"


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a migration file into statements, as drizzle does, dropping blank pieces."""
    return tuple(piece.strip() for piece in sql.split(BREAKPOINT) if piece.strip())


def file_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def _journal_entries(journal_text: str) -> tuple[list[object], str, str]:
    try:
        document = json.loads(journal_text)
    except json.JSONDecodeError as exc:
        raise JournalError(
            f"not valid JSON ({exc.msg} at line {exc.lineno})", file=JOURNAL_PATH
        ) from None
    if not isinstance(document, dict):
        raise JournalError("must be a JSON object", file=JOURNAL_PATH)
    dialect = document.get("dialect", "sqlite")
    if dialect not in ("sqlite", "turso"):
        raise JournalError(
            f"dialect must be 'sqlite' or 'turso', got {dialect!r}", file=JOURNAL_PATH
        )
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise JournalError("'entries' must be a list", file=JOURNAL_PATH)
    return entries, str(document.get("version", "7")), dialect


def _entry_field(entry: Mapping[str, object], key: str, kind: type, position: int) -> object:
    value = entry.get(key)
    # bool is an int in Python; a journal with "when": true is still malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise JournalError(
            f"entry {position}: {key!r} must be {kind.__name__}, got {value!r}", file=JOURNAL_PATH
        )
    return value


def _journal_error(position: int, message: str) -> JournalError:
    return JournalError(f"entry {position}: {message}", file=JOURNAL_PATH)


def parse_migrations(
    journal_text: str,
    files: Mapping[str, str],
    *,
    check_statement: StatementCheck | None = None,
) -> MigrationSet:
    """Build a :class:`MigrationSet` from the journal text and ``{filename: text}``.

    ``files`` holds the ``.sql`` files of the folder (names relative to it). Raises a
    :class:`MigrationFileError` subclass naming the file, and for SQL the statement
    number (1-based) and the checker's message.
    """
    entries, journal_version, dialect = _journal_entries(journal_text)
    migrations: list[Migration] = []
    seen_tags: set[str] = set()
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _journal_error(position, "must be an object")
        idx = _entry_field(entry, "idx", int, position)
        when = _entry_field(entry, "when", int, position)
        tag = _entry_field(entry, "tag", str, position)
        assert isinstance(idx, int)
        assert isinstance(when, int)
        assert isinstance(tag, str)
        breakpoints = entry.get("breakpoints", True)
        if idx != position:
            raise JournalError(
                f"entry {position}: idx must be {position}, got {idx}", file=JOURNAL_PATH
            )
        if not _TAG.fullmatch(tag):
            raise JournalError(
                f"entry {position}: tag {tag!r} is not a file name stem", file=JOURNAL_PATH
            )
        if tag in seen_tags:
            raise DuplicateTag(f"tag {tag!r} appears twice", file=JOURNAL_PATH)
        seen_tags.add(tag)
        if when <= 0:
            raise JournalError(
                f"entry {position}: when must be positive, got {when}", file=JOURNAL_PATH
            )
        if migrations and when <= migrations[-1].when:
            raise NonIncreasingWhen(
                f"entry {position} ({tag}): when {when} is not greater than "
                f"{migrations[-1].when} of {migrations[-1].tag}",
                file=JOURNAL_PATH,
            )
        filename = f"{tag}.sql"
        if filename not in files:
            raise MissingMigrationFile("listed in the journal but missing", file=filename)
        sql = files[filename]
        statements = split_statements(sql)
        if not statements:
            raise StatementError("the file has no statements", file=filename, statement=1)
        if check_statement is not None:
            for number, statement in enumerate(statements, start=1):
                problem = check_statement(statement)
                if problem is not None:
                    raise StatementError(problem, file=filename, statement=number)
        migrations.append(
            Migration(
                idx=idx,
                tag=tag,
                when=when,
                statements=statements,
                hash=file_hash(sql),
                sql=sql,
                breakpoints=bool(breakpoints),
            )
        )
    listed = {m.filename for m in migrations}
    for filename in sorted(files):
        if filename.endswith(".sql") and filename not in listed:
            raise UnlistedMigrationFile("not listed in meta/_journal.json", file=filename)
    return MigrationSet(
        migrations=tuple(migrations), journal_version=journal_version, dialect=dialect
    )
