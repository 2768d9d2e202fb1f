"""``python -m per_user_db.dev``: the local Turso (Platform API + SQL over HTTP).

With ``--create-on-demand`` or ``--protocol-only`` it is the plain protocol server of
old instead: no Platform API, no tokens, every database open to everyone.

With ``--tls`` everything is served over HTTPS with a certificate from a local CA kept
in ``DATA_DIR/tls/``; the command prints the variables that make clients trust it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import shlex
import sys
from pathlib import Path

from per_user_db.dev._local_turso import DEFAULT_MAX_DATABASES
from per_user_db.dev._platform import create_local_turso_app, local_turso
from per_user_db.dev._server import (
    DEFAULT_STATEMENT_TIMEOUT,
    create_protocol_app,
    protocol_state,
    serve,
)
from per_user_db.dev._state import ROOT_NAME
from per_user_db.dev._tls import LocalCertificates, ensure_certificates

__all__ = ["main"]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="A local Turso: Turso's Platform API at http://HOST:PORT/v1/ and the "
        "databases DIR/<name>.db over Hrana at http://HOST:PORT/db/<name>/ "
        "(https:// with --tls).",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; anything but loopback needs --allow-remote",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on a non-loopback --host: anyone who reaches it can use the API and "
        "every database with the printed token, over plain HTTP unless --tls",
    )
    parser.add_argument("--port", type=_port, default=8080, help="TCP port (0: any free port)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".local-turso"),
        help="directory of <name>.db and local-turso.json (default: ./.local-turso)",
    )
    parser.add_argument("--org", default="local", help="organization slug (default: local)")
    parser.add_argument(
        "--api-token", help="Platform API token to accept (default: a random one, printed)"
    )
    parser.add_argument(
        "--max-databases",
        type=int,
        default=DEFAULT_MAX_DATABASES,
        help=f"plan quota; creating more answers 402 (default: {DEFAULT_MAX_DATABASES})",
    )
    parser.add_argument(
        "--latency", type=_non_negative, default=0.0, metavar="MS", help="delay every request"
    )
    parser.add_argument(
        "--fail-rate",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="answer this fraction of Platform API requests with 500/503/429, unexecuted",
    )
    parser.add_argument("--seed", type=int, help="seed for --fail-rate (reproducible faults)")
    parser.add_argument(
        "--db",
        type=Path,
        metavar="FILE",
        help="serve this one SQLite file at http://HOST:PORT/ (v2/v3 pipeline, cursor, "
        "WebSocket), made if missing; no Platform API, no token, as 'turso dev --db-file'",
    )
    parser.add_argument(
        "--protocol-only",
        action="store_true",
        help="serve only the SQL protocol, without Platform API or tokens",
    )
    parser.add_argument(
        "--create-on-demand",
        action="store_true",
        help="protocol only: create a missing database on its first request instead of 404",
    )
    parser.add_argument(
        "--stream-idle-timeout", type=float, default=10.0, help="seconds before a stream expires"
    )
    parser.add_argument(
        "--statement-timeout",
        type=_non_negative,
        default=DEFAULT_STATEMENT_TIMEOUT,
        help="seconds a request's SQL may run before it is interrupted (0: no limit)",
    )
    parser.add_argument(
        "--no-inline",
        action="store_true",
        help="run every request's SQL on a worker thread, never on the event loop's: "
        "slower for short queries, but no request holds the others up",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate from a local CA in DATA_DIR/tls/ (made on the "
        "first start), so that libsql:// + Hostname works unchanged in every client that "
        "trusts the CA; prints the variables to set",
    )
    args = parser.parse_args(argv)
    if not _is_loopback(args.host) and not args.allow_remote:
        parser.error(
            f"--host {args.host} is not a loopback address; add --allow-remote to listen there"
        )
    return args


async def _serve(args: argparse.Namespace) -> None:
    if args.db is not None:
        await _serve_one_file(args)
        return
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.protocol_only or args.create_on_demand:
        app = create_protocol_app(
            args.data_dir,
            stream_idle_timeout=args.stream_idle_timeout,
            create_on_demand=args.create_on_demand,
            statement_timeout=args.statement_timeout or None,
            inline=not args.no_inline,
        )
        certificates = ensure_certificates(args.data_dir / "tls") if args.tls else None
        context = None if certificates is None else certificates.server_context()
        async with serve(app, host=args.host, port=args.port, ssl_context=context) as address:
            print(
                f"serving {args.data_dir}/<name>.db at {address.database_url('<name>')}",
                flush=True,
            )
            _print_trust(certificates)
            print("press Ctrl-C to stop", flush=True)
            await asyncio.Event().wait()
        return
    app = create_local_turso_app(
        args.data_dir,
        org=args.org,
        api_token=args.api_token,
        max_databases=args.max_databases,
        latency=args.latency / 1000,
        fail_rate=args.fail_rate,
        seed=args.seed,
        stream_idle_timeout=args.stream_idle_timeout,
        statement_timeout=args.statement_timeout or None,
        tls=args.tls,
        inline=not args.no_inline,
    )
    turso = local_turso(app)
    async with serve(app, host=args.host, port=args.port) as address:
        print(f"local Turso serving {args.data_dir}", flush=True)
        print(f"  API base URL: {address.url}  (@tursodatabase/api: {address.url}/v1/)", flush=True)
        print(f"  organization: {turso.org}", flush=True)
        if args.api_token is None:
            print(f"  API token:    {turso.api_token}", flush=True)
        print(f"  databases:    {turso.database_url('<name>', address)}", flush=True)
        _print_trust(turso.certificates)
        print("press Ctrl-C to stop", flush=True)
        await asyncio.Event().wait()


async def _serve_one_file(args: argparse.Namespace) -> None:
    path = args.db.resolve()
    app = create_protocol_app(
        path.parent,
        stream_idle_timeout=args.stream_idle_timeout,
        statement_timeout=args.statement_timeout or None,
        root_database=path,
        inline=not args.no_inline,
    )
    await protocol_state(app).create_database(ROOT_NAME)  # made if missing, kept if not
    certificates = ensure_certificates(path.parent / "tls") if args.tls else None
    context = None if certificates is None else certificates.server_context()
    async with serve(app, host=args.host, port=args.port, ssl_context=context) as address:
        print(f"serving {path} at {address.url}/", flush=True)
        print(f"    export DATABASE_URL={address.url}/", flush=True)
        _print_trust(certificates)
        print("press Ctrl-C to stop", flush=True)
        await asyncio.Event().wait()


def _print_trust(certificates: LocalCertificates | None) -> None:
    if certificates is None:
        return
    env = certificates.trust_env()
    print(f"  TLS CA:       {certificates.ca_path}", flush=True)
    print("  trust it in the client's environment (set before the client starts):", flush=True)
    ca = shlex.quote(env["SSL_CERT_FILE"])
    print(f"    export SSL_CERT_FILE={ca}        # Python: per_user_db, PyPI libsql", flush=True)
    node = shlex.quote(env["NODE_EXTRA_CA_CERTS"])
    print(f"    export NODE_EXTRA_CA_CERTS={node}  # Node: @libsql/client", flush=True)
    print(
        "  (SSL_CERT_FILE replaces the system trust store: set it only for processes "
        "that talk to this server)",
        flush=True,
    )


def main(argv: list[str] | None = None, *, prog: str = "per-user-db dev") -> None:
    args = _parse(argv, prog)
    if args.allow_remote and not _is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach it can use the Platform "
            "API and every database with the printed token"
            + ("" if args.tls else ", and all of it travels unencrypted (add --tls)"),
            file=sys.stderr,
            flush=True,
        )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args))
    except OSError as exc:  # the port is taken, the address is not ours, the folder is not
        print(f"{prog}: cannot start: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main(prog="python -m per_user_db.dev")
