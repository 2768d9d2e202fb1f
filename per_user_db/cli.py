"""The ``per-user-db`` command line.

Each subcommand is a thin wrapper over the library; exit codes: 0 success, 1 the
operation failed (the message says why), 2 usage error, 3 not available yet.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_YET = 3


def _not_yet(what: str) -> int:
    print(
        f"per-user-db: {what} is not available yet in this version "
        "(see the README's status section); nothing was done.",
        file=sys.stderr,
    )
    return EXIT_NOT_YET


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="per-user-db",
        description="Provision and migrate one SQLite database per user on Turso (libSQL).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create", help="create (or find) the database of USER_ID and print its credentials"
    )
    create.add_argument("user_id", metavar="USER_ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "create":
        return _not_yet("'create' (provisioning)")
    return EXIT_USAGE  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
