"""The msgspec request decoder only ever accepts what the dict-based decoder accepts,
and reads it the same way; everything else it leaves to that decoder."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from per_user_db.core._hrana import CloseRequest, encode_pipeline_request
from per_user_db.core._hrana._codec import decode_pipeline_request_checked
from per_user_db.core._hrana._wire_requests import decode_pipeline_request_fast

from .test_hrana import BATONS, REQUESTS

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["1", "-7", "1e3", "0x10", " 5", "AQID", "AQI", "=="]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*prefix, index))
    return found


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A valid pipeline request with one or two places changed: a value replaced, a key
    removed, or a key added."""
    requests = draw(st.lists(REQUESTS, max_size=3))
    close = draw(st.booleans())
    body = json.loads(
        encode_pipeline_request(draw(BATONS), [*requests, *([CloseRequest()] if close else [])])
    )
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(paths(body)))
        if not path:
            continue
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["confuse", "confuse", "replace", "remove", "add"]))
        if action == "confuse":  # the same value in another JSON type
            old = parent[last]
            parent[last] = draw(
                st.sampled_from([str(old), [old], {"value": old}, old is None, 1.0, 1, None])
            )
        elif action == "replace":
            parent[last] = draw(JSON_VALUES)
        elif action == "remove" and isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["type", "value", "sql", "sql_id", "x"]))] = draw(
                JSON_VALUES
            )
    return json.dumps(body).encode()


@given(BATONS, st.lists(REQUESTS, max_size=4), st.booleans())
def test_every_valid_request_is_read_fast_and_the_same(
    baton: str | None, requests: list[Any], close: bool
) -> None:
    body = encode_pipeline_request(baton, [*requests, *([CloseRequest()] if close else [])])
    fast = decode_pipeline_request_fast(body)
    assert fast is not None
    assert fast == decode_pipeline_request_checked(body)


@given(mutated_bodies())
def test_whatever_is_read_fast_the_checked_decoder_reads_the_same(body: bytes) -> None:
    fast = decode_pipeline_request_fast(body)
    if fast is not None:
        # Raises ProtocolError if the fast decoder accepted what this one refuses.
        assert decode_pipeline_request_checked(body) == fast


def test_what_it_leaves_to_the_checked_decoder() -> None:
    for body in [
        b'{"requests": [{"type": "execute", "stmt": {"sql": "x", "sql_id": 1}}]}',
        b'{"requests": [{"type": "execute", "stmt": {"sql": "x", "want_rows": 1}}]}',
        b'{"requests": [{"type": "close"}, {"type": "close"}]}',
        b'{"requests": [{"type": "execute", "stmt": {"sql": "x", "args": '
        b'[{"type": "integer", "value": "1e3"}]}}]}',
        b'{"requests": [{"type": "execute", "stmt": {"sql": "x", "args": '
        b'[{"type": "integer", "value": true}]}}]}',
        b'{"requests": [{"type": "batch", "batch": {"steps": [{"stmt": {"sql": "x"}, '
        b'"condition": {"type": "ok", "step": 0}}]}}]}',
        b'{"requests": []',
        b"[" * 10_000 + b"]" * 10_000,
    ]:
        assert decode_pipeline_request_fast(body) is None, body
