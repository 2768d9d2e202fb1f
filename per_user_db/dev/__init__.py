"""A local stand-in for Turso: SQLite files served over Hrana over HTTP.

The *local Turso* (:func:`create_local_turso_app`) adds Turso's Platform API to the SQL
protocol: create databases and mint Ed25519 JWTs over HTTP exactly as against
``https://api.turso.tech``, then open ``"libsql://" + Hostname`` with the token. Run it
from a shell (``python -m per_user_db.dev --port 8080 --data-dir ./.local-turso``) or in
a test::

    app = create_local_turso_app(tmp_path, org="local", api_token="secret")
    async with serve(app) as address:
        api = address.url  # POST {api}/v1/organizations/local/databases, Bearer secret
        turso = local_turso(app)  # .api_token, .org, .create_database(...), .mint_...

The plain protocol server (:func:`create_protocol_app`) has no Platform API and, by
default, no authorization: its ``authorize`` hook lets everyone read and write every
database. Both are for development and tests only and listen on 127.0.0.1 by default.

``create_local_turso_app(..., tls=True)`` serves HTTPS with a certificate signed by a
local CA in ``data_dir/tls/`` (:func:`ensure_certificates`): ``Hostname`` loses its
``?tls=0`` and ``"libsql://" + Hostname`` works unchanged in our client, npm
``@libsql/client`` and PyPI ``libsql`` once they trust the CA
(:meth:`LocalCertificates.trust_env`: ``SSL_CERT_FILE``, ``NODE_EXTRA_CA_CERTS``).
"""

from __future__ import annotations

from per_user_db.dev._faults import Faults
from per_user_db.dev._local_turso import (
    DEFAULT_MAX_DATABASES,
    LocalTurso,
    LocalTursoError,
    LocalTursoErrorCode,
)
from per_user_db.dev._platform import LOCAL_TURSO, create_local_turso_app, local_turso
from per_user_db.dev._registry import DatabaseRecord, GroupRecord, RegistryCorrupt
from per_user_db.dev._server import (
    PROTOCOL_STATE,
    TLS_CONTEXT,
    ServerAddress,
    create_protocol_app,
    protocol_state,
    serve,
)
from per_user_db.dev._state import (
    Access,
    Authorize,
    ProtocolServerState,
    RequestCounts,
    allow_all,
)
from per_user_db.dev._tls import LocalCertificates, ensure_certificates
from per_user_db.dev._tokens import (
    InvalidExpiration,
    TokenClaims,
    TokenRejection,
    TokenSigner,
    parse_expiration,
)

__all__ = [
    "DEFAULT_MAX_DATABASES",
    "LOCAL_TURSO",
    "PROTOCOL_STATE",
    "TLS_CONTEXT",
    "Access",
    "Authorize",
    "DatabaseRecord",
    "Faults",
    "GroupRecord",
    "InvalidExpiration",
    "LocalCertificates",
    "LocalTurso",
    "LocalTursoError",
    "LocalTursoErrorCode",
    "ProtocolServerState",
    "RegistryCorrupt",
    "RequestCounts",
    "ServerAddress",
    "TokenClaims",
    "TokenRejection",
    "TokenSigner",
    "allow_all",
    "create_local_turso_app",
    "create_protocol_app",
    "ensure_certificates",
    "local_turso",
    "parse_expiration",
    "protocol_state",
    "serve",
]
