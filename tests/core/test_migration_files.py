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
from per_user_db.core._migrations import BREAKPOINT, file_hash, parse_migrations, split_statements

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
        ('{"entries": {}}', "^meta/_journal.json: 'entries' must be a list$"),
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
    with pytest.raises(JournalError, match=message) as info:
        parse_migrations(text, {"a.sql": "SELECT 1;"})
    assert info.value.file == "meta/_journal.json"
    assert str(info.value).startswith("meta/_journal.json: ")


def test_when_must_increase_strictly() -> None:
    text = journal([("0000_a", 5), ("0001_b", 5)])
    with pytest.raises(
        NonIncreasingWhen, match=r"entry 1 \(0001_b\): when 5 is not greater than 5 of 0000_a"
    ) as info:
        migrations_from_texts(text, {"0000_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})
    assert info.value.file == "meta/_journal.json"


def test_duplicate_tags() -> None:
    text = journal([("0000_a", 1), ("0000_a", 2)])
    with pytest.raises(DuplicateTag) as info:
        migrations_from_texts(text, {"0000_a.sql": "SELECT 1;"})
    assert str(info.value) == "meta/_journal.json: tag '0000_a' appears twice"
    assert info.value.file == "meta/_journal.json"


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


# --- what the mutation run found unpinned (issue #15) ----------------------------------------


def journal_document(**fields: object) -> str:
    document: dict[str, object] = {
        "version": "7",
        "dialect": "sqlite",
        "entries": [
            {"idx": 0, "version": "6", "when": 1, "tag": "0000_init", "breakpoints": True},
            {"idx": 1, "version": "6", "when": 2, "tag": "0001_add", "breakpoints": True},
        ],
    }
    document.update(fields)
    return json.dumps(document)


FILES = {"0000_init.sql": INIT_SQL, "0001_add.sql": ADD_SQL}


def test_a_turso_journal_is_accepted_and_written_back_as_turso() -> None:
    migrations = migrations_from_texts(journal_document(dialect="turso"), FILES)
    assert migrations.dialect == "turso"
    assert json.loads(migrations.journal_json())["dialect"] == "turso"
    assert migrations_from_texts(journal_document(), FILES).dialect == "sqlite"
    without = json.loads(journal_document())
    del without["dialect"], without["version"]
    defaults = migrations_from_texts(json.dumps(without), FILES)
    assert (defaults.dialect, defaults.journal_version) == ("sqlite", "7")


def test_journal_version_is_kept() -> None:
    migrations = migrations_from_texts(journal_document(version="6"), FILES)
    assert migrations.journal_version == "6"
    assert json.loads(migrations.journal_json())["version"] == "6"


def test_breakpoints_false_survives_a_round_trip() -> None:
    entries = json.loads(journal_document())["entries"]
    entries[1]["breakpoints"] = False
    migrations = migrations_from_texts(journal_document(entries=entries), FILES)
    assert [m.breakpoints for m in migrations] == [True, False]
    written = migrations.journal_json()
    assert [e["breakpoints"] for e in json.loads(written)["entries"]] == [True, False]
    assert migrations_from_texts(written, FILES) == migrations
    del entries[1]["breakpoints"]  # drizzle-kit's older journals leave it out: true
    assert migrations_from_texts(journal_document(entries=entries), FILES).migrations[1].breakpoints


def test_journal_json_is_drizzle_kits_layout() -> None:
    migrations = migrations_from_texts(journal_document(), FILES)
    assert migrations.journal_json() == (
        json.dumps(json.loads(journal_document()), indent=2) + "\n"
    )


def test_fingerprint_depends_on_the_version_table() -> None:
    # Two sets with the same files recorded in different tables are different sets: a
    # verified-cache entry for one must not vouch for the other.
    drizzle = migrations_from_texts(journal_document(), FILES)
    own = migrations_from_texts(journal_document(), FILES, version_table="store_migrations")
    assert own.version_table == "store_migrations"
    assert own.fingerprint != drizzle.fingerprint
    digest = hashlib.sha256(b"store_migrations")
    for m in own:
        digest.update(f"{m.idx}\0{m.tag}\0{m.when}\0{m.hash}\n".encode())
    assert own.fingerprint == digest.hexdigest()


@pytest.mark.parametrize(
    "table",
    [
        'x" (id); DROP TABLE users; --',
        "x'",
        "two words",
        "1starts_with_digit",
        "",
        "trailing\n",
        "ünicode",
    ],
)
def test_version_table_must_be_a_plain_identifier(table: str) -> None:
    # The name is put into SQL between double quotes: anything but an identifier could
    # break out of them.
    with pytest.raises(ValueError, match="version_table must be a plain SQL identifier") as info:
        migrations_from_texts(journal_document(), FILES, version_table=table)
    assert str(info.value) == f"version_table must be a plain SQL identifier, got {table!r}"


@pytest.mark.parametrize("table", ["_t", "T9", "__drizzle_migrations", "a_B_1"])
def test_plain_identifiers_are_accepted(table: str) -> None:
    assert (
        migrations_from_texts(journal_document(), FILES, version_table=table).version_table == table
    )


def test_a_set_is_a_sized_iterable_with_a_head() -> None:
    migrations = migrations_from_texts(journal_document(), FILES)
    assert len(migrations) == 2
    assert [m.filename for m in migrations] == ["0000_init.sql", "0001_add.sql"]
    empty = migrations_from_texts(journal_document(entries=[]), {})
    assert len(empty) == 0
    assert empty.head is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"idx": "0", "when": 1, "tag": "0000_init"}, "entry 0: 'idx' must be int, got '0'"),
        ({"idx": 0, "when": 1, "tag": 7}, "entry 0: 'tag' must be str, got 7"),
        ({"idx": 0, "when": -3, "tag": "0000_init"}, "entry 0: when must be positive, got -3"),
        ({"idx": 0, "when": 1.5, "tag": "0000_init"}, "entry 0: 'when' must be int, got 1.5"),
    ],
)
def test_malformed_entries_name_the_field(entry: dict[str, object], message: str) -> None:
    with pytest.raises(JournalError) as info:
        migrations_from_texts(journal_document(entries=[entry]), FILES)
    assert str(info.value) == f"meta/_journal.json: {message}"
    assert info.value.file == "meta/_journal.json"


def test_statements_are_split_and_stripped_like_drizzle() -> None:
    assert split_statements(f"  A;\n{BREAKPOINT}\n\n{BREAKPOINT}\tB;\n") == ("A;", "B;")
    assert file_hash("é") == hashlib.sha256("é".encode()).hexdigest()


def test_a_checker_failure_names_file_and_statement() -> None:
    seen: list[str] = []

    def checker(statement: str) -> str | None:
        seen.append(statement)
        return "nope" if statement.startswith("CREATE INDEX") else None

    with pytest.raises(StatementError) as info:
        parse_migrations(journal_document(), FILES, check_statement=checker)
    assert str(info.value) == "0000_init.sql: statement 2: nope"
    assert (info.value.file, info.value.statement) == ("0000_init.sql", 2)
    assert len(seen) == 2
    parsed = parse_migrations(journal_document(), FILES)  # no checker: structure only
    assert parsed.migrations[1].sql == ADD_SQL
