"""A real protocol server on 127.0.0.1 and a tiny Hrana client built from the codec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import pytest

from per_user_db.core._hrana import (
    PipelineResponse,
    decode_pipeline_response,
    encode_pipeline_request,
)
from per_user_db.dev import (
    ProtocolServerState,
    ServerAddress,
    create_protocol_app,
    protocol_state,
    serve,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from per_user_db.core._hrana import StreamRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    address: ServerAddress
    state: ProtocolServerState
    session: aiohttp.ClientSession

    async def post(self, path: str, body: bytes, *, token: str | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.post(self.address.url + path, data=body, headers=headers) as r:
            return r.status, await r.read()

    async def pipeline(
        self,
        requests: Sequence[StreamRequest],
        *,
        db: str = "main",
        baton: str | None = None,
        version: int = 3,
        token: str | None = None,
    ) -> PipelineResponse:
        status, body = await self.post(
            f"/db/{db}/v{version}/pipeline", encode_pipeline_request(baton, requests), token=token
        )
        assert status == 200, body
        return decode_pipeline_response(body, requests=requests)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    app = create_protocol_app(tmp_path, stream_idle_timeout=0.5)
    state = protocol_state(app)
    await state.create_database("main")
    await state.create_database("other")
    async with serve(app) as address, aiohttp.ClientSession() as session:
        yield Server(address=address, state=state, session=session)
