"""The ``per-user-db`` command line.

Thin wrappers over the library. Output is for people; ``--json`` prints one JSON
document for scripts. Exit codes: 0 done, 1 the operation failed (the message says
why), 2 bad usage or settings, 3 refused (a name outside this app's prefix and env,
an operation the embedded backend does not have).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ._connect import connect
from ._migrate import apply_migrations
from ._provision import Credentials, create_database
from ._settings import Backend, Settings
from .core._result import Err, Ok

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .turso._client import Authorization, PlatformClient

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"per-user-db: {message}", file=sys.stderr)
    return code


def _emit(as_json: bool, document: object, lines: Sequence[str]) -> None:
    if as_json:
        print(json.dumps(document, indent=2, default=str))
    else:
        for line in lines:
            print(line)


def _settings() -> Settings | int:
    match Settings.from_env():
        case Ok(settings):
            return settings
        case Err(problem):
            return _fail(f"setting {problem}", EXIT_USAGE)


def _client(settings: Settings) -> PlatformClient:
    return settings.platform_client()


def _credentials_document(credentials: Credentials, *, show_token: bool) -> dict[str, Any]:
    return {
        "name": credentials.name,
        "url": credentials.url,
        "auth_token": credentials.auth_token if show_token else None,
        "expires_at": credentials.expires_at.isoformat() if credentials.expires_at else None,
    }


async def _create(args: argparse.Namespace) -> int:
    settings = _settings()
    if isinstance(settings, int):
        return settings
    match await create_database(args.user_id, settings=settings):
        case Err(error):
            return _fail(str(error))
        case Ok(credentials):
            pass
    document = _credentials_document(credentials, show_token=args.show_token)
    lines = [
        f"database   {credentials.name}",
        f"url        {credentials.url}",
        f"expires at {credentials.expires_at.isoformat() if credentials.expires_at else 'never'}",
    ]
    if args.show_token and credentials.auth_token:
        lines.append(f"token      {credentials.auth_token}")
    if args.migrate:
        match await connect(credentials.url, credentials.auth_token, migrate=False):
            case Err(unreachable):
                return _fail(str(unreachable))
            case Ok(db):
                async with db:
                    migrated = await apply_migrations(db)
        match migrated:
            case Err(problem):
                return _fail(f"created, but migrating failed: {problem}")
            case Ok(report):
                document["migrations_applied"] = list(report.applied)
                document["migrations_already_applied"] = list(report.already_applied)
                lines.append(
                    f"migrations {len(report.applied)} applied, "
                    f"{len(report.already_applied)} already there"
                )
    _emit(args.json, document, lines)
    return EXIT_OK


def _embedded_names(settings: Settings) -> list[str]:
    return sorted(p.stem for p in Path(settings.data_dir).glob("*.db"))


async def _list(args: argparse.Namespace) -> int:
    settings = _settings()
    if isinstance(settings, int):
        return settings
    rows: list[dict[str, Any]] = []
    if settings.backend is Backend.EMBEDDED:
        for name in _embedded_names(settings):
            path = (settings.data_dir / f"{name}.db").resolve()
            rows.append({"name": name, "url": f"file:{path}", "group": None})
    else:
        async with _client(settings) as api:
            match await api.list_databases(group=settings.group, prefix=args.prefix):
                case Err(error):
                    return _fail(str(error))
                case Ok(found):
                    rows = [{"name": d.name, "url": d.url, "group": d.group} for d in found]
    rows = [
        r
        for r in rows
        if (args.prefix is None or r["name"].startswith(args.prefix))
        and not any(r["name"].startswith(x) for x in args.exclude)
    ]
    _emit(args.json, rows, [f"{r['name']}  {r['url']}" for r in rows] or ["(no databases)"])
    return EXIT_OK


def _own_prefix(settings: Settings) -> str:
    return f"{settings.prefix}-{settings.app_env}-user-"


def _delete_file(path: Path) -> bool:
    existed = path.exists()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed


async def _delete(args: argparse.Namespace) -> int:
    settings = _settings()
    if isinstance(settings, int):
        return settings
    if not args.force and not args.name.startswith(_own_prefix(settings)):
        return _fail(
            f"refusing to delete {args.name!r}: it is not a user database of this app and "
            f"environment (names start with {_own_prefix(settings)!r}); pass --force to "
            "delete it anyway",
            EXIT_REFUSED,
        )
    if settings.backend is Backend.EMBEDDED:
        existed = await anyio.to_thread.run_sync(
            _delete_file, settings.data_dir / f"{args.name}.db"
        )
    else:
        async with _client(settings) as api:
            match await api.delete_database(args.name):
                case Err(error):
                    return _fail(str(error))
                case Ok(existed):
                    pass
    state = "deleted" if existed else "already gone"
    _emit(args.json, {"name": args.name, "deleted": existed}, [f"{args.name}: {state}"])
    return EXIT_OK


async def _token(args: argparse.Namespace) -> int:
    settings = _settings()
    if isinstance(settings, int):
        return settings
    if settings.backend is Backend.EMBEDDED:
        return _fail(
            "embedded databases are local files and take no token "
            "(set TURSO_PLATFORM_API_TOKEN to use Turso)",
            EXIT_REFUSED,
        )
    days = None if args.never else args.expires_in_days
    authorization: Authorization = "read-only" if args.read_only else "full-access"
    async with _client(settings) as api:
        match await api.create_token(args.name, expires_in_days=days, authorization=authorization):
            case Err(error):
                return _fail(str(error))
            case Ok(jwt):
                pass
    # The token alone on stdout, so that it can be piped; it is the command's output.
    _emit(args.json, {"name": args.name, "auth_token": jwt}, [jwt])
    return EXIT_OK


async def _check(args: argparse.Namespace) -> int:
    from ._check import check_schema
    from ._migration_files import load_migrations
    from .core._migrations import MigrationFileError

    try:
        migrations = load_migrations(args.migrations) if args.migrations else None
    except MigrationFileError as exc:
        return _fail(f"the migrations cannot be read: {exc}")
    problems = await check_schema(migrations, args.schema)
    if problems:
        print("schema/ and the migrations disagree:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_FAILED
    print("the migrations build exactly what schema/ declares")
    return EXIT_OK


def _migration_new(args: argparse.Namespace) -> int:
    from ._migration_files import add_migration

    try:
        created = add_migration(args.dir, args.name, now_ms=int(time.time() * 1000))
    except ValueError as exc:  # bad name, broken journal, file exists
        return _fail(str(exc), EXIT_USAGE)
    print(f"created {created}; write its SQL, then run per-user-db check")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    # Only "expo" so far; formats are subcommands of "export" so that others can join.
    from . import _expo
    from ._bundled import bundled_path
    from .core._migrations import MigrationFileError

    source = args.migrations or bundled_path("migrations")
    try:
        migrations, journal_text = _expo.read_migrations_folder(source)
    except MigrationFileError as exc:
        return _fail(f"the migrations in {source} cannot be read: {exc}", EXIT_USAGE)
    files = _expo.expo_files(migrations, inline=args.inline, journal_text=journal_text)
    match _expo.write_expo_export(args.out_dir, files, force=args.force):
        case Err(error):
            refused = error.problem is _expo.ExportProblem.NOT_EMPTY
            return _fail(str(error), EXIT_REFUSED if refused else EXIT_FAILED)
        case Ok(report):
            pass
    document = {
        "out_dir": str(report.out_dir),
        "migrations": [m.tag for m in migrations],
        "inline": args.inline,
        "written": list(report.written),
        "removed": list(report.removed),
    }
    lines = [f"exported {len(migrations)} migrations for Expo to {report.out_dir}"]
    lines += [f"  wrote   {name}" for name in report.written]
    lines += [f"  removed {name} (not in the exported set)" for name in report.removed]
    _emit(args.json, document, lines)
    return EXIT_OK


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="per-user-db",
        description="Provision and migrate one SQLite database per user on Turso (libSQL). "
        "Settings come from the environment (TURSO_PLATFORM_API_TOKEN, TURSO_ORGANIZATION, "
        "APP_ENV, ...); without TURSO_PLATFORM_API_TOKEN databases are local SQLite files.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser(
        "create", help="create (or find) the database of USER_ID, then migrate it"
    )
    create.add_argument("user_id", metavar="USER_ID")
    create.add_argument(
        "--no-migrate", dest="migrate", action="store_false", help="do not apply migrations"
    )
    create.add_argument("--show-token", action="store_true", help="print the issued token too")
    create.add_argument("--json", action="store_true", help="print one JSON document")

    listing = commands.add_parser("list", help="list user databases")
    listing.add_argument("--prefix", help="only names starting with PREFIX")
    listing.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PREFIX",
        help="skip names starting with PREFIX (repeatable)",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON document")

    delete = commands.add_parser("delete", help="delete a database (a missing one is success)")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument(
        "--force", action="store_true", help="delete even outside this app's prefix and env"
    )
    delete.add_argument("--json", action="store_true", help="print one JSON document")

    token = commands.add_parser("token", help="issue a token for database NAME")
    token.add_argument("name", metavar="NAME")
    lifetime = token.add_mutually_exclusive_group()
    lifetime.add_argument("--expires-in-days", type=int, default=30, metavar="N")
    lifetime.add_argument("--never", action="store_true", help="a token that never expires")
    token.add_argument("--read-only", action="store_true", help="a read-only token")
    token.add_argument("--json", action="store_true", help="print one JSON document")

    check = commands.add_parser(
        "check",
        help="replay the migrations and compare the result with schema/ (exit 1 on a difference)",
    )
    check.add_argument("--migrations", type=Path, help="a migrations folder (default: bundled)")
    check.add_argument("--schema", type=Path, help="a schema folder (default: bundled)")

    migration = commands.add_parser("migration", help="work on a migrations folder")
    migration_commands = migration.add_subparsers(dest="migration_command", required=True)
    new = migration_commands.add_parser(
        "new", help="add NNNN_NAME.sql and its journal entry (when = now in ms)"
    )
    new.add_argument("name", metavar="NAME", help="lowercase letters, digits and _")
    new.add_argument(
        "--dir", type=Path, default=Path("migrations"), help="the folder (default: ./migrations)"
    )

    export = commands.add_parser("export", help="write the migrations in another tool's layout")
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    expo = formats.add_parser(
        "expo", help="drizzle-kit's Expo layout: the .sql files, meta/_journal.json, migrations.js"
    )
    expo.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    expo.add_argument(
        "--migrations", type=Path, metavar="DIR", help="a migrations folder (default: bundled)"
    )
    expo.add_argument(
        "--inline",
        action="store_true",
        help="put the journal and the SQL in migrations.js (no .sql or .json imports)",
    )
    expo.add_argument(
        "--force", action="store_true", help="write into a non-empty folder that is no export"
    )
    expo.add_argument("--json", action="store_true", help="print one JSON document")

    commands.add_parser(
        "dev",
        help="run the local Turso (Platform API + SQL protocol) on 127.0.0.1; "
        "see per-user-db dev --help",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["dev"]:
        # Everything after "dev" is the local Turso's own command line (--help included).
        from .dev.__main__ import main as dev_main

        dev_main(arguments[1:])
        return EXIT_OK
    args = _build_parser().parse_args(arguments)
    if args.command == "export":
        return _export(args)
    if args.command == "migration":
        return _migration_new(args)
    if args.command == "token" and not args.never and args.expires_in_days < 1:
        return _fail("--expires-in-days must be at least 1", EXIT_USAGE)
    run = {
        "create": _create,
        "list": _list,
        "delete": _delete,
        "token": _token,
        "check": _check,
    }[args.command]
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
