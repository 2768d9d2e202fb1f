"""A local stand-in for Turso: SQLite files served over Hrana over HTTP.

Run it from a shell (``python -m per_user_db.dev --port 8080 --data-dir ./dbs``) or in a
test::

    app = create_protocol_app(tmp_path)
    await protocol_state(app).create_database("alice")
    async with serve(app) as address:
        url = address.database_url("alice")  # http://127.0.0.1:PORT/db/alice/

Only for development and tests: it listens on 127.0.0.1 by default, and its default
``authorize`` hook lets everyone read and write every database.
"""

from __future__ import annotations

from per_user_db.dev._server import (
    PROTOCOL_STATE,
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

__all__ = [
    "PROTOCOL_STATE",
    "Access",
    "Authorize",
    "ProtocolServerState",
    "RequestCounts",
    "ServerAddress",
    "allow_all",
    "create_protocol_app",
    "protocol_state",
    "serve",
]
