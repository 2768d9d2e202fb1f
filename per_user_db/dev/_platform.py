"""The local Turso: Turso's Platform API and the SQL protocol in one aiohttp app.

An app or a test creates databases and mints tokens through the same HTTP API as
``https://api.turso.tech`` (paths, field casing, status codes and ``{"error": ...}``
bodies follow Turso's OpenAPI description), then opens ``"libsql://" + Hostname`` with
the minted token. Everything listens on 127.0.0.1.

``Hostname`` is ``HOST:PORT/db/<name>/?tls=0``: ``libsql://`` + that is plain HTTP to
this server for clients that honour ``tls=0`` (ours and npm ``@libsql/client``). PyPI
``libsql`` always uses TLS for ``libsql://``; give it ``http://HOST:PORT/db/<name>/``,
or start the app with ``tls=True``: then everything is HTTPS with a certificate from a
local CA in the data directory (:mod:`._tls`), ``Hostname`` is ``HOST:PORT/db/<name>/``
and ``"libsql://" + Hostname`` works unchanged in every client that trusts the CA.

The rules live in :class:`~._local_turso.LocalTurso`, whose methods return
``Ok``/``Err``; the handlers here only translate HTTP to them and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from per_user_db.core._result import Err, Ok
from per_user_db.dev._faults import Faults, fault_middleware, is_platform_path
from per_user_db.dev._front import front_door_safe
from per_user_db.dev._local_turso import (
    DEFAULT_MAX_DATABASES,
    LocalTurso,
    LocalTursoError,
    LocalTursoErrorCode,
    token_authorizer,
)
from per_user_db.dev._registry import (
    DEFAULT_GROUP,
    LOCAL_LOCATION,
    DatabaseRecord,
    GroupRecord,
    Registry,
)
from per_user_db.dev._server import (
    DEFAULT_STATEMENT_TIMEOUT,
    SERVER_VERSION,
    SQL_LATENCY,
    TLS_CONTEXT,
    create_protocol_app,
    protocol_state,
)
from per_user_db.dev._tls import ensure_certificates

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "LOCAL_TURSO",
    "create_local_turso_app",
    "local_turso",
]

DEFAULT_PAGE_SIZE = 10_000
"""Databases per list page when the client sends no ``limit``: large enough that a
client which never paginates (like Turso's official ones) sees every database."""

_PLAN = "local"
_UNLIMITED = 1_000_000_000_000


LOCAL_TURSO: web.AppKey[LocalTurso] = web.AppKey("per_user_db.local_turso", LocalTurso)


def local_turso(app: web.Application) -> LocalTurso:
    """The state of an app made by :func:`create_local_turso_app`."""
    return app[LOCAL_TURSO]


def create_local_turso_app(
    data_dir: str | os.PathLike[str],
    *,
    org: str = "local",
    api_token: str | None = None,
    max_databases: int = DEFAULT_MAX_DATABASES,
    latency: float = 0.0,
    fail_rate: float = 0.0,
    seed: int | None = None,
    public_host: str | None = None,
    clock: Callable[[], float] = time.time,
    stream_idle_timeout: float = 10.0,
    statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT,
    tls: bool = False,
    inline: bool = True,
) -> web.Application:
    """An app serving the Platform API under ``/v1/`` and databases under ``/db/<name>/``.

    ``api_token`` defaults to a random one (read it from :func:`local_turso`).
    ``latency`` is in seconds and delays every request; ``fail_rate`` (0..1) answers
    that fraction of Platform requests with a 500/503/429 before running them, drawn
    from a generator seeded by ``seed``. ``clock`` (unix seconds) decides token
    ``iat``/``exp`` and their checks; tests pass a fake one to expire tokens at once.
    ``public_host`` replaces the ``Host`` header in ``Hostname`` (behind a proxy).
    ``statement_timeout`` (seconds, None: no limit) interrupts a request's SQL that runs
    longer (see :func:`create_protocol_app`).

    ``tls`` serves everything over HTTPS (:func:`serve` picks the context up from the
    app) with a certificate for 127.0.0.1, ::1 and localhost, signed by a CA made on the
    first start in ``data_dir/tls/`` and reused afterwards: clients trust
    ``local_turso(app).certificates.ca_path`` (``SSL_CERT_FILE``, ``NODE_EXTRA_CA_CERTS``).
    """
    if max_databases < 0:
        raise ValueError(f"max_databases must be >= 0, got {max_databases}")
    if not org:
        raise ValueError("org must be a non-empty organization slug")
    faults = Faults(latency=latency, fail_rate=fail_rate, seed=seed)
    registry = Registry.open(Path(data_dir), now=clock())
    # Not ``clock``: clients check certificates against the real time, whatever a test fakes.
    certificates = ensure_certificates(Path(data_dir) / "tls") if tls else None
    app = create_protocol_app(
        data_dir,
        authorize=token_authorizer(registry, clock),
        stream_idle_timeout=stream_idle_timeout,
        statement_timeout=statement_timeout,
        inline=inline,
    )
    app[LOCAL_TURSO] = LocalTurso(
        org=org,
        api_token=api_token or secrets.token_urlsafe(32),
        max_databases=max_databases,
        registry=registry,
        protocol=protocol_state(app),
        faults=faults,
        clock=clock,
        public_host=public_host,
        certificates=certificates,
    )
    if certificates is not None:
        app[TLS_CONTEXT] = certificates.server_context()
    # Outermost, so a fault answers before anything runs or is counted.
    app.middlewares.insert(0, fault_middleware(faults))
    app[SQL_LATENCY] = lambda: faults.latency
    app.middlewares.append(_require_api_token)
    _add_platform_routes(app.router)
    return app


# --- HTTP ------------------------------------------------------------------------------


def _add_platform_routes(router: web.UrlDispatcher) -> None:
    org = "/v1/organizations/{org}"
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]], str]] = [
        ("GET", "/v1/auth/validate", _validate, "validate"),
        ("GET", "/v1/organizations", _list_organizations, "organizations"),
        ("GET", org, _get_organization, "organization"),
        ("GET", org + "/databases", _list_databases, "list_databases"),
        ("POST", org + "/databases", _create_database, "create_database"),
        ("GET", org + "/databases/{name}", _get_database, "get_database"),
        ("DELETE", org + "/databases/{name}", _delete_database, "delete_database"),
        ("POST", org + "/databases/{name}/auth/tokens", _create_database_token, "database_token"),
        ("POST", org + "/databases/{name}/auth/rotate", _rotate_database, "rotate_database"),
        ("GET", org + "/groups", _list_groups, "list_groups"),
        ("POST", org + "/groups", _create_group, "create_group"),
        ("GET", org + "/groups/{group}", _get_group, "get_group"),
        ("POST", org + "/groups/{group}/auth/tokens", _create_group_token, "group_token"),
        ("POST", org + "/groups/{group}/auth/rotate", _rotate_group, "rotate_group"),
        ("GET", org + "/plans", _plans, "plans"),
        ("GET", org + "/subscription", _subscription, "subscription"),
        ("GET", org + "/usage", _usage, "usage"),
    ]
    for method, path, handler, name in routes:
        # Counted by the protocol app's middleware as "platform/<name>".
        router.add_route(method, path, handler, name=f"platform.{name}")


def _error_response(error: LocalTursoError) -> web.Response:
    return web.json_response({"error": error.message}, status=error.status)


def _bad_request(message: str) -> web.Response:
    return _error_response(LocalTursoError(code=LocalTursoErrorCode.BAD_REQUEST, message=message))


@front_door_safe  # the pipeline routes are no Platform API paths
@web.middleware
async def _require_api_token(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not is_platform_path(request.path):
        return await handler(request)
    turso = request.app[LOCAL_TURSO]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Constant time: the token is the only secret between a local app and this API.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), turso.api_token.encode()
    ):
        return web.json_response(
            {
                "error": "unauthorized: send 'Authorization: Bearer <API token>' with the token "
                "the local Turso printed at start (or was given with --api-token)"
            },
            status=401,
        )
    org = request.match_info.get("org")
    if org is not None and org != turso.org:
        return web.json_response({"error": "organization not found"}, status=404)
    return await handler(request)


async def _json_object(request: web.Request) -> dict[str, object] | web.Response:
    try:
        body = json.loads(await request.read())
    except (UnicodeDecodeError, ValueError):
        return _bad_request("the request body must be a JSON object")
    except RecursionError:
        return _bad_request("the request body is nested too deeply")
    if not isinstance(body, dict):
        return _bad_request("the request body must be a JSON object")
    return body


def _host(request: web.Request) -> str:
    return request.host


def _database_json(turso: LocalTurso, record: DatabaseRecord, host: str) -> dict[str, object]:
    return {
        "Name": record.name,
        "DbId": record.db_id,
        "Hostname": turso.hostname(record.name, host),
        "block_reads": False,
        "block_writes": False,
        "allow_attach": False,
        "regions": [LOCAL_LOCATION],
        "primaryRegion": LOCAL_LOCATION,
        "type": "logical",
        "version": SERVER_VERSION,
        "group": record.group,
        "is_schema": False,
        "schema": "",
        "sleeping": False,
        "archived": False,
        "delete_protection": False,
        "parent": None,
    }


def _group_json(record: GroupRecord) -> dict[str, object]:
    return {
        "name": record.name,
        "uuid": record.uuid,
        "version": SERVER_VERSION,
        "locations": [record.location],
        "primary": record.location,
        "archived": False,
        "delete_protection": False,
    }


def _organization_json(turso: LocalTurso) -> dict[str, object]:
    return {
        "name": turso.org,
        "slug": turso.org,
        "type": "team",
        "overages": False,
        "require_mfa": False,
        "blocked_reads": False,
        "blocked_writes": False,
        "plan_id": _PLAN,
        "plan_timeline": "monthly",
        "platform": "",
    }


async def _validate(request: web.Request) -> web.Response:
    return web.json_response({"exp": -1})  # the local API token never expires


async def _list_organizations(request: web.Request) -> web.Response:
    return web.json_response([_organization_json(request.app[LOCAL_TURSO])])


async def _get_organization(request: web.Request) -> web.Response:
    return web.json_response({"organization": _organization_json(request.app[LOCAL_TURSO])})


async def _list_databases(request: web.Request) -> web.Response:
    turso = request.app[LOCAL_TURSO]
    query = request.query
    limit_text = query.get("limit")
    limit = DEFAULT_PAGE_SIZE
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= DEFAULT_PAGE_SIZE:
            return _bad_request(f"limit must be an integer from 1 to {DEFAULT_PAGE_SIZE}")
        limit = int(limit_text)
    # The cursor is the name of the last database of the previous page: names are unique
    # and pages are in name order, so a database deleted meanwhile cannot derail it.
    after = query.get("cursor") or ""
    group, parent = query.get("group"), query.get("parent")
    matching = [
        record
        for record in turso.registry.databases()
        if record.name > after
        and (not group or record.group == group)
        # Local databases are never branches, so any parent filter leaves none.
        and not parent
    ]
    page = matching[:limit]
    next_cursor = page[-1].name if len(matching) > limit else None
    host = _host(request)
    return web.json_response(
        {
            "databases": [_database_json(turso, record, host) for record in page],
            "pagination": {"next": next_cursor},
        }
    )


async def _create_database(request: web.Request) -> web.Response:
    turso = request.app[LOCAL_TURSO]
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    name, group = body.get("name"), body.get("group")
    if not isinstance(name, str):
        return _bad_request("name is required: a string of lowercase letters, digits and '-'")
    if not isinstance(group, str):
        return _bad_request(f"group is required (the local Turso has {DEFAULT_GROUP!r})")
    if body.get("seed") is not None:
        return _bad_request("seed is not supported by the local Turso; create an empty database")
    match await turso.create_database(name, group=group):
        case Ok(record):
            return web.json_response(
                {
                    "database": {
                        "DbId": record.db_id,
                        "Hostname": turso.hostname(record.name, _host(request)),
                        "Name": record.name,
                    }
                }
            )
        case Err(error):
            return _error_response(error)


async def _get_database(request: web.Request) -> web.Response:
    turso = request.app[LOCAL_TURSO]
    match turso.get_database(request.match_info["name"]):
        case Ok(record):
            return web.json_response({"database": _database_json(turso, record, _host(request))})
        case Err(error):
            return _error_response(error)


async def _delete_database(request: web.Request) -> web.Response:
    match await request.app[LOCAL_TURSO].delete_database(request.match_info["name"]):
        case Ok(record):
            return web.json_response({"database": record.name})
        case Err(error):
            return _error_response(error)


def _authorization(request: web.Request) -> bool | web.Response:
    """Whether the token is to be read-only, or the 400 for a bad ``authorization``."""
    value = request.query.get("authorization") or "full-access"
    if value not in ("full-access", "read-only"):
        return _bad_request(f"invalid authorization {value!r}: use 'full-access' or 'read-only'")
    return value == "read-only"


async def _create_database_token(request: web.Request) -> web.Response:
    # The optional body (``permissions.read_attach``) is ignored: ATTACH is not served.
    read_only = _authorization(request)
    if isinstance(read_only, web.Response):
        return read_only
    match request.app[LOCAL_TURSO].mint_database_token(
        request.match_info["name"],
        expiration=request.query.get("expiration"),
        read_only=read_only,
    ):
        case Ok(jwt):
            return web.json_response({"jwt": jwt})
        case Err(error):
            return _error_response(error)


async def _rotate_database(request: web.Request) -> web.Response:
    match await request.app[LOCAL_TURSO].rotate_database_tokens(request.match_info["name"]):
        case Ok(_):
            return web.Response(status=200)  # documented as "No Content", though a 200
        case Err(error):
            return _error_response(error)


async def _list_groups(request: web.Request) -> web.Response:
    groups = request.app[LOCAL_TURSO].registry.groups()
    return web.json_response({"groups": [_group_json(g) for g in groups]})


async def _create_group(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    name, location = body.get("name"), body.get("location", LOCAL_LOCATION)
    if not isinstance(name, str):
        return _bad_request("name is required")
    if not isinstance(location, str):
        return _bad_request("location must be a string")
    match await request.app[LOCAL_TURSO].create_group(name, location=location):
        case Ok(record):
            return web.json_response({"group": _group_json(record)})
        case Err(error):
            return _error_response(error)


async def _get_group(request: web.Request) -> web.Response:
    match request.app[LOCAL_TURSO].get_group(request.match_info["group"]):
        case Ok(record):
            return web.json_response({"group": _group_json(record)})
        case Err(error):
            return _error_response(error)


async def _create_group_token(request: web.Request) -> web.Response:
    read_only = _authorization(request)
    if isinstance(read_only, web.Response):
        return read_only
    match request.app[LOCAL_TURSO].mint_group_token(
        request.match_info["group"],
        expiration=request.query.get("expiration"),
        read_only=read_only,
    ):
        case Ok(jwt):
            return web.json_response({"jwt": jwt})
        case Err(error):
            return _error_response(error)


async def _rotate_group(request: web.Request) -> web.Response:
    match await request.app[LOCAL_TURSO].rotate_group_tokens(request.match_info["group"]):
        case Ok(_):
            return web.Response(status=200)
        case Err(error):
            return _error_response(error)


async def _plans(request: web.Request) -> web.Response:
    turso = request.app[LOCAL_TURSO]
    quotas = {
        "databases": turso.max_databases,
        "rowsRead": _UNLIMITED,
        "rowsWritten": _UNLIMITED,
        "storage": _UNLIMITED,
        "locations": 1,
        "groups": _UNLIMITED,
        "bytesSynced": _UNLIMITED,
    }
    plan = {"name": _PLAN, "price": "0", "prices": [], "quotas": quotas}
    return web.json_response({"plans": [plan]})


async def _subscription(request: web.Request) -> web.Response:
    subscription = {"name": _PLAN, "plan": _PLAN, "overages": False, "timeline": "monthly"}
    return web.json_response({"subscription": subscription})


async def _usage(request: web.Request) -> web.Response:
    turso = request.app[LOCAL_TURSO]
    records = turso.registry.databases()
    paths = [turso.protocol.database_path(r.name) for r in records]
    sizes = await asyncio.to_thread(_storage_bytes, paths)
    per_database = [
        {
            "uuid": record.db_id,
            "instances": [],
            "total": {
                "rows_read": 0,
                "rows_written": 0,
                "storage_bytes": size,
                "bytes_synced": 0,
            },
        }
        for record, size in zip(records, sizes, strict=True)
    ]
    usage = {
        "rows_read": 0,
        "rows_written": 0,
        "databases": len(records),
        "locations": 1,
        "storage_bytes": sum(sizes),
        "groups": len(turso.registry.groups()),
        "bytes_synced": 0,
    }
    return web.json_response(
        {
            "organization": {
                "uuid": turso.registry.organization_id,
                "usage": usage,
                "databases": per_database,
            }
        }
    )


def _storage_bytes(paths: list[Path]) -> list[int]:
    sizes = []
    for path in paths:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(f"{path}{suffix}").stat().st_size
        sizes.append(total)
    return sizes
