from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from per_user_db import (
    DuplicateTag,
    JournalError,
    MigrationFileError,
    MissingMigrationFile,
    NonIncreasingWhen,
    StatementError,
    UnlistedMigrationFile,
    load_migrations,
    migrations_from_texts,
)
from per_user_db.core._migrations import BREAKPOINT, parse_migrations

from .strategies import journal

INIT_SQL = (
    "CREATE TABLE `programs` (`id` text PRIMARY KEY NOT NULL, `name` text NOT NULL);\n"
    f"{BREAKPOINT}\n"
    "CREATE INDEX `programs_name_idx` ON `programs` (`name`);\n"
)
ADD_SQL = "ALTER TABLE `programs` ADD `meta_info` text;\n"


def write_folder(root: Path, entries: list[tuple[str, int]], files: dict[str, bytes]) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "_journal.json").write_text(journal(entries))
    for name, content in files.items():
        (root / name).write_bytes(content)
    return root


def test_loads_a_drizzle_folder(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        [("0000_init", 1777014726134), ("0001_add", 1777273658768)],
        {"0000_init.sql": INIT_SQL.encode(), "0001_add.sql": ADD_SQL.encode()},
    )
    migrations = load_migrations(folder)
    assert [m.tag for m in migrations] == ["0000_init", "0001_add"]
    first = migrations.migrations[0]
    assert first.idx == 0
    assert first.when == 1777014726134
    assert first.statements == (
        "CREATE TABLE `programs` (`id` text PRIMARY KEY NOT NULL, `name` text NOT NULL);",
        "CREATE INDEX `programs_name_idx` ON `programs` (`name`);",
    )
    # drizzle's definition: sha256 of the file exactly as written.
    assert first.hash == hashlib.sha256(INIT_SQL.encode()).hexdigest()
    assert migrations.head is not None
    assert migrations.head.tag == "0001_add"


def test_hash_keeps_crlf_line_endings(tmp_path: Path) -> None:
    crlf = ADD_SQL.replace("\n", "\r\n").encode()
    folder = write_folder(tmp_path, [("0000_add", 1)], {"0000_add.sql": crlf})
    assert load_migrations(folder).migrations[0].hash == hashlib.sha256(crlf).hexdigest()


def test_fingerprint_is_stable_and_sensitive_to_every_file() -> None:
    entries = [("0000_init", 1), ("0001_add", 2)]
    files = {"0000_init.sql": INIT_SQL, "0001_add.sql": ADD_SQL}
    a = migrations_from_texts(journal(entries), files)
    b = migrations_from_texts(journal(entries), dict(files))
    assert a.fingerprint == b.fingerprint
    edited = dict(files, **{"0001_add.sql": ADD_SQL + "-- edited\n"})
    assert migrations_from_texts(journal(entries), edited).fingerprint != a.fingerprint
    shorter = migrations_from_texts(journal(entries[:1]), {"0000_init.sql": INIT_SQL})
    assert shorter.fingerprint != a.fingerprint


def test_journal_json_round_trips() -> None:
    entries = [("0000_init", 1777014726134), ("0001_add", 1777273658768)]
    files = {"0000_init.sql": INIT_SQL, "0001_add.sql": ADD_SQL}
    migrations = migrations_from_texts(journal(entries), files)
    again = migrations_from_texts(migrations.journal_json(), files)
    assert again == migrations
    assert json.loads(migrations.journal_json())["entries"][1]["when"] == 1777273658768


def test_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"meta/_journal.json: not found in"):
        load_migrations(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"meta/_journal.json: not valid JSON \(Expecting property name"),
        ("[]", "meta/_journal.json: must be a JSON object"),
        ('{"dialect": "postgresql", "entries": []}', "dialect must be 'sqlite' or 'turso'"),
        ('{"entries": {}}', "'entries' must be a list"),
        ('{"entries": [7]}', "entry 0: must be an object"),
        (
            '{"entries": [{"idx": 0, "when": "1", "tag": "a"}]}',
            "entry 0: 'when' must be int, got '1'",
        ),
        ('{"entries": [{"idx": 0, "when": true, "tag": "a"}]}', "entry 0: 'when' must be int"),
        ('{"entries": [{"idx": 1, "when": 1, "tag": "a"}]}', "entry 0: idx must be 0, got 1"),
        (
            '{"entries": [{"idx": 0, "when": 1, "tag": "../x"}]}',
            "tag '../x' is not a file name stem",
        ),
        ('{"entries": [{"idx": 0, "when": 0, "tag": "a"}]}', "entry 0: when must be positive"),
    ],
)
def test_malformed_journal(text: str, message: str) -> None:
    with pytest.raises(JournalError, match=message):
        parse_migrations(text, {"a.sql": "SELECT 1;"})


def test_when_must_increase_strictly() -> None:
    text = journal([("0000_a", 5), ("0001_b", 5)])
    with pytest.raises(
        NonIncreasingWhen, match=r"entry 1 \(0001_b\): when 5 is not greater than 5 of 0000_a"
    ):
        migrations_from_texts(text, {"0000_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})


def test_duplicate_tags() -> None:
    text = journal([("0000_a", 1), ("0000_a", 2)])
    with pytest.raises(DuplicateTag, match="tag '0000_a' appears twice"):
        migrations_from_texts(text, {"0000_a.sql": "SELECT 1;"})


def test_listed_file_missing() -> None:
    with pytest.raises(
        MissingMigrationFile, match=re.escape("0001_b.sql: listed in the journal but missing")
    ):
        migrations_from_texts(journal([("0000_a", 1), ("0001_b", 2)]), {"0000_a.sql": "SELECT 1;"})


def test_unlisted_file(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path, [("0000_a", 1)], {"0000_a.sql": b"SELECT 1;", "0001_stray.sql": b"SELECT 2;"}
    )
    with pytest.raises(
        UnlistedMigrationFile, match=re.escape("0001_stray.sql: not listed in meta/_journal")
    ):
        load_migrations(folder)


def test_empty_file() -> None:
    with pytest.raises(
        StatementError, match=re.escape("0000_a.sql: statement 1: the file has no statements")
    ):
        migrations_from_texts(journal([("0000_a", 1)]), {"0000_a.sql": f"\n{BREAKPOINT}\n"})


def test_syntax_error_names_file_statement_and_parser_message() -> None:
    sql = f"CREATE TABLE a (id integer);\n{BREAKPOINT}\nCREAT TABLE b (id integer);\n"
    with pytest.raises(StatementError) as info:
        migrations_from_texts(journal([("0000_a", 1)]), {"0000_a.sql": sql})
    assert str(info.value) == (
        "0000_a.sql: statement 2: SQL syntax error at line 1, column 13: "
        "Invalid expression / Unexpected token"
    )
    assert info.value.file == "0000_a.sql"
    assert info.value.statement == 2


def test_two_statements_without_a_breakpoint() -> None:
    with pytest.raises(
        StatementError, match="statement 1: must hold exactly one SQL statement, found 2"
    ):
        migrations_from_texts(
            journal([("0000_a", 1)]), {"0000_a.sql": "CREATE TABLE a (x);\nCREATE TABLE b (y);\n"}
        )


def test_triggers_are_one_statement() -> None:
    sql = (
        "CREATE TABLE a (x integer);\n"
        f"{BREAKPOINT}\n"
        "CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN UPDATE a SET x = x + 1; END;\n"
    )
    migrations = migrations_from_texts(journal([("0000_a", 1)]), {"0000_a.sql": sql})
    assert len(migrations.migrations[0].statements) == 2
    with pytest.raises(StatementError, match="incomplete CREATE TRIGGER"):
        migrations_from_texts(
            journal([("0000_a", 1)]), {"0000_a.sql": "CREATE TRIGGER t AFTER INSERT ON a BEGIN"}
        )


def test_non_utf8_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path, [("0000_a", 1)], {"0000_a.sql": b"SELECT '\xff';"})
    with pytest.raises(MigrationFileError, match=re.escape("0000_a.sql: not UTF-8")):
        load_migrations(folder)
