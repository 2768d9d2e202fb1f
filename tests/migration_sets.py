"""Migration sets for the migrate-on-connect tests, written as drizzle-kit would."""

from __future__ import annotations

from pathlib import Path

from per_user_db import MigrationSet, load_migrations
from per_user_db.core._migrations import BREAKPOINT

from .core.strategies import journal

WHENS = [1777014726134, 1777273658768, 1777342025930, 1777699652593]

INIT = [
    "CREATE TABLE `parent` (`id` integer PRIMARY KEY NOT NULL, `name` text NOT NULL);",
    "CREATE TABLE `child` (`id` integer PRIMARY KEY NOT NULL, `parent_id` integer NOT NULL, "
    "`v` text, FOREIGN KEY (`parent_id`) REFERENCES `parent`(`id`) ON DELETE cascade);",
    "CREATE INDEX `child_parent_id_idx` ON `child` (`parent_id`);",
]
ADD_COLUMN = ["ALTER TABLE `child` ADD `note` text;"]
# drizzle's table rebuild: foreign keys off, new table, copy, drop, rename. With foreign
# keys on, DROP TABLE `parent` would cascade-delete every child row.
REBUILD = [
    "PRAGMA foreign_keys=OFF;",
    "CREATE TABLE `__new_parent` (`id` integer PRIMARY KEY NOT NULL, `name` text NOT NULL, "
    "CONSTRAINT `parent_name_length_check` CHECK(length(`name`) BETWEEN 1 AND 200));",
    "INSERT INTO `__new_parent`(`id`, `name`) SELECT `id`, `name` FROM `parent`;",
    "DROP TABLE `parent`;",
    "ALTER TABLE `__new_parent` RENAME TO `parent`;",
    "PRAGMA foreign_keys=ON;",
]
ADD_DEFAULT = ["ALTER TABLE `parent` ADD `weight_step` real DEFAULT 2.5 NOT NULL;"]
STANDARD = [INIT, ADD_COLUMN, REBUILD, ADD_DEFAULT]


def write_set(folder: Path, migrations: list[list[str]], whens: list[int] | None = None) -> Path:
    whens = whens or WHENS[: len(migrations)]
    (folder / "meta").mkdir(parents=True, exist_ok=True)
    entries = [(f"{idx:04d}_step{idx}", when) for idx, when in enumerate(whens)]
    for (tag, _), statements in zip(entries, migrations, strict=True):
        (folder / f"{tag}.sql").write_text(f"\n{BREAKPOINT}\n".join(statements) + "\n")
    (folder / "meta" / "_journal.json").write_text(journal(entries))
    return folder


def make_set(
    folder: Path, migrations: list[list[str]], whens: list[int] | None = None
) -> MigrationSet:
    return load_migrations(write_set(folder, migrations, whens))
