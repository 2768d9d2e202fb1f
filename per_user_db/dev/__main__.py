"""``python -m per_user_db.dev``: serve a directory of SQLite files over Hrana over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from per_user_db.dev._server import create_protocol_app, serve

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m per_user_db.dev",
        description="Serve DIR/<name>.db at http://HOST:PORT/db/<name>/ like Turso does.",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    parser.add_argument("--data-dir", type=Path, required=True, help="directory of <name>.db")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--create-on-demand",
        action="store_true",
        help="create a missing database on its first request instead of answering 404",
    )
    parser.add_argument(
        "--stream-idle-timeout", type=float, default=10.0, help="seconds before a stream expires"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    args.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_protocol_app(
        args.data_dir,
        stream_idle_timeout=args.stream_idle_timeout,
        create_on_demand=args.create_on_demand,
    )
    async with serve(app, host=args.host, port=args.port) as address:
        print(f"serving {args.data_dir}/<name>.db at {address.database_url('<name>')}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
