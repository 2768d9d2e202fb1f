"""Migrations exported for an Expo / React Native app, as drizzle-kit writes them.

With ``driver: "expo"`` drizzle-kit writes, next to the ``NNNN_<tag>.sql`` files and
``meta/_journal.json``, a ``migrations.js`` that imports the journal and every ``.sql``
file (the app inlines the ``.sql`` imports with babel-plugin-inline-import) and
default-exports ``{ journal, migrations: { m0000, m0001, ... } }``: the object
drizzle's Expo migrator takes. :func:`expo_module` writes that file byte for byte as
drizzle-kit does, so an export and a ``drizzle-kit generate`` of the same set do not
differ. ``inline=True`` writes a self-contained module instead, with the journal and
the SQL texts as literals, for bundlers that cannot import ``.sql`` files.

:func:`expo_files` is pure (a migration set in, file contents out);
:func:`write_expo_export` is the thin writer. It refuses to write into a folder that
holds anything but a previous export unless forced, and removes ``.sql`` files a
previous export left that the new set no longer lists: a drizzle folder with an
unlisted ``.sql`` file is one our loader rejects.
"""

from __future__ import annotations

import enum
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._migration_files import load_migrations
from .core._migrations import JOURNAL_PATH
from .core._result import Err, Ok, Result

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .core._migrations import MigrationSet

__all__ = [
    "EXPO_HEADER",
    "MIGRATIONS_JS",
    "ExportError",
    "ExportProblem",
    "ExportReport",
    "expo_files",
    "expo_module",
    "is_previous_export",
    "migration_key",
    "read_migrations_folder",
    "write_expo_export",
]

MIGRATIONS_JS = "migrations.js"
EXPO_HEADER = (
    "// This file is required for Expo/React Native SQLite migrations"
    " - https://orm.drizzle.team/quick-sqlite/expo\n\n"
)
_INLINE_NOTE = (
    "// Written by `per-user-db export expo --inline`: the journal and the SQL of each\n"
    "// migration are inlined, so no .json or .sql import support is needed.\n\n"
)
# Tags are validated when a set is parsed; a hand-built set must not smuggle a quote
# or a path into the import specifiers.
_SAFE_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SNAPSHOT = re.compile(r"[A-Za-z0-9_.-]+_snapshot\.json")


def migration_key(idx: int) -> str:
    """The key of migration ``idx`` in the exported object: ``m`` and 4 digits."""
    return f"m{idx:04d}"


def _js_string(text: str) -> str:
    # JSON with ensure_ascii is a valid JavaScript literal: quotes, backslashes and
    # control characters are escaped, and so is everything non-ASCII, U+2028/U+2029
    # included (raw line terminators in string literals before ES2019).
    return json.dumps(text, ensure_ascii=True)


def expo_module(
    migrations: MigrationSet, *, inline: bool = False, journal_text: str | None = None
) -> str:
    """The text of ``migrations.js`` for ``migrations``.

    By default exactly what drizzle-kit writes for ``driver: "expo"`` (imports of
    ``./meta/_journal.json`` and ``./<tag>.sql``, its whitespace included). With
    ``inline`` the journal (``journal_text``, default the set's own) and the SQL texts
    are literals.
    """
    for m in migrations:
        if not _SAFE_TAG.fullmatch(m.tag):
            raise ValueError(f"migration {m.idx}: tag {m.tag!r} is not a file name stem")
    keys = [migration_key(m.idx) for m in migrations]
    if inline:
        journal = json.loads(
            journal_text if journal_text is not None else migrations.journal_json()
        )
        text = EXPO_HEADER + _INLINE_NOTE
        text += f"const journal = {json.dumps(journal, indent=2, ensure_ascii=True)};\n"
        text += "".join(
            f"const {key} = {_js_string(m.sql)};\n" for key, m in zip(keys, migrations, strict=True)
        )
        text += "\nexport default {\n  journal,\n  migrations: {\n"
        text += "".join(f"    {key},\n" for key in keys)
        text += "  },\n};\n"
        return text
    # drizzle-kit's own layout, odd indentation and all: apps diff this file in review.
    text = EXPO_HEADER + "import journal from './meta/_journal.json';\n"
    text += "".join(
        f"import {key} from './{m.tag}.sql';\n" for key, m in zip(keys, migrations, strict=True)
    )
    text += "\n  export default {\n    journal,\n    migrations: {\n      "
    text += ",\n".join(keys)
    text += "\n    }\n  }\n  "
    return text


def expo_files(
    migrations: MigrationSet, *, inline: bool = False, journal_text: str | None = None
) -> dict[str, bytes]:
    """Every file of the export, by path relative to the output folder, ``/``-separated.

    The ``.sql`` files are the migrations' texts as read (drizzle hashes them as
    written, so they are bytes, never re-encoded newlines); the journal is
    ``journal_text`` (the source file's text) when given, else the set's own.
    """
    journal = journal_text if journal_text is not None else migrations.journal_json()
    files = {m.filename: m.sql.encode("utf-8") for m in migrations}
    files[JOURNAL_PATH] = journal.encode("utf-8")
    module = expo_module(migrations, inline=inline, journal_text=journal)
    files[MIGRATIONS_JS] = module.encode("utf-8")
    return files


def read_migrations_folder(folder: str | Path) -> tuple[MigrationSet, str]:
    """The validated set in ``folder`` and its journal's text, for a byte-identical copy.

    Raises :class:`~per_user_db.MigrationFileError` as :func:`load_migrations` does.
    """
    migrations = load_migrations(folder)
    return migrations, (Path(folder) / JOURNAL_PATH).read_bytes().decode("utf-8")


class ExportProblem(enum.Enum):
    NOT_EMPTY = "not_empty"
    """The folder holds files that are not a previous export; ``force`` overrides."""
    NOT_A_FOLDER = "not_a_folder"
    WRITE_FAILED = "write_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportError:
    problem: ExportProblem
    out_dir: Path
    detail: str

    def __str__(self) -> str:
        match self.problem:
            case ExportProblem.NOT_EMPTY:
                return (
                    f"refusing to export into {self.out_dir}: it is not empty and is not a "
                    f"previous export ({self.detail}); choose a new or empty folder, or pass "
                    "--force to write into it anyway"
                )
            case ExportProblem.NOT_A_FOLDER:
                return f"cannot export into {self.out_dir}: it exists and is not a folder"
            case ExportProblem.WRITE_FAILED:
                return f"exporting into {self.out_dir} failed: {self.detail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportReport:
    out_dir: Path
    written: tuple[str, ...]
    removed: tuple[str, ...]
    """Stale ``.sql`` files of a previous export that the new set does not list."""


def _foreign_entries(out_dir: Path) -> list[str]:
    """What in ``out_dir`` an export (ours or drizzle-kit's) would not have written."""
    foreign: list[str] = []
    for entry in sorted(out_dir.iterdir()):
        if entry.name == "meta" and entry.is_dir():
            foreign.extend(
                f"meta/{inner.name}"
                for inner in sorted(entry.iterdir())
                if not inner.is_file()
                or not (inner.name == "_journal.json" or _SNAPSHOT.fullmatch(inner.name))
            )
        elif not entry.is_file() or not (entry.name == MIGRATIONS_JS or entry.suffix == ".sql"):
            foreign.append(entry.name)
    return foreign


def is_previous_export(out_dir: Path) -> bool:
    """``out_dir`` holds a ``migrations.js`` and nothing but a drizzle migrations folder's files.

    A drizzle-kit ``out`` folder generated for Expo counts (its snapshots included):
    exporting into it replaces what drizzle-kit would replace.
    """
    return (out_dir / MIGRATIONS_JS).is_file() and not _foreign_entries(out_dir)


def _write_atomically(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def write_expo_export(
    out_dir: str | Path, files: Mapping[str, bytes], *, force: bool = False
) -> Result[ExportReport, ExportError]:
    """Write ``files`` (from :func:`expo_files`) into ``out_dir``, creating it if needed.

    A non-empty ``out_dir`` must be a previous export (:func:`is_previous_export`)
    unless ``force``; from a previous export, ``.sql`` files not in ``files`` are
    removed. ``migrations.js`` is written last, so an interrupted export never has an
    entry point importing files that are not there yet.
    """
    folder = Path(out_dir)
    order = sorted(files, key=lambda name: (name == MIGRATIONS_JS, name))
    removed: list[str] = []
    try:
        if folder.exists() and not folder.is_dir():
            return Err(ExportError(problem=ExportProblem.NOT_A_FOLDER, out_dir=folder, detail=""))
        if folder.is_dir() and any(folder.iterdir()):
            if is_previous_export(folder):
                removed = sorted(
                    p.name for p in folder.glob("*.sql") if p.is_file() and p.name not in files
                )
            elif not force:
                found = _foreign_entries(folder) or [f"no {MIGRATIONS_JS}"]
                shown = ", ".join(repr(name) for name in found[:3])
                more = f" and {len(found) - 3} more" if len(found) > 3 else ""
                return Err(
                    ExportError(
                        problem=ExportProblem.NOT_EMPTY,
                        out_dir=folder,
                        detail=f"found {shown}{more}",
                    )
                )
        for name in order:
            target = folder.joinpath(*name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, files[name])
        for name in removed:
            (folder / name).unlink(missing_ok=True)
    except OSError as exc:
        return Err(ExportError(problem=ExportProblem.WRITE_FAILED, out_dir=folder, detail=str(exc)))
    return Ok(ExportReport(out_dir=folder, written=tuple(order), removed=tuple(removed)))
