"""libsql_client.create_client: a client for a URL."""

from .client import Client

def create_client(
    url: str, *, auth_token: str | None = None, tls: bool | None = None
) -> Client: ...
