"""The client's pipeline-response decoder: parsed and validated in C by msgspec.

A 10,000-row result is 50,000 tagged values; decoding them one ``dict`` at a time in
Python was 80% of a large fetch. Here msgspec parses the bytes straight into typed
structs (the value union is tagged by ``type``, so it needs no Python per value) and one
list comprehension per row takes the values out. What msgspec does not check, this module
does: one result per request, responses that echo their request's type, rows as wide as
their columns, one result or one error per batch step. Every failure is a
:class:`ProtocolError` naming the JSON path.

Two leniencies of msgspec's non-strict mode are accepted on purpose: an integer value
written in exponent form (``"1e3"``) and numbers sent as strings in count fields decode
as the integers they denote; a value that is not an exact integer, or outside 64 bits,
is still an error. The dict-based decoder in :mod:`._codec` serves the server side and the
WebSocket transport; property tests prove that both read every result the same way.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from ._fields import ProtocolError
from ._messages import (
    BatchResponse,
    BatchResult,
    CloseResponse,
    CloseSqlResponse,
    Col,
    DescribeParam,
    DescribeResponse,
    DescribeResult,
    ExecuteResponse,
    GetAutocommitResponse,
    HranaError,
    PipelineResponse,
    SequenceResponse,
    StmtResult,
    StoreSqlResponse,
    StreamError,
    StreamOk,
    request_type,
)
from ._values import INT64_MAX, INT64_MIN, decode_base64

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._messages import StreamRequest, StreamResponse, StreamResult
    from ._values import Value

__all__ = ["decode_pipeline_response"]


# --- values: every variant keeps what the row holds in ``value`` -------------------------


class _Null(msgspec.Struct, tag="null"):
    value: None = None


class _Integer(msgspec.Struct, tag="integer"):
    value: Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


class _Float(msgspec.Struct, tag="float"):
    # Turso sends null for a non-finite REAL; it becomes NaN (see decode_value).
    value: float | None


class _Text(msgspec.Struct, tag="text"):
    value: str


class _Blob(msgspec.Struct, tag="blob"):
    base64: str
    # Filled from ``base64`` after parsing (padding is optional on the wire, which
    # msgspec's own bytes decoding does not allow); no peer sends this key.
    value: bytes = msgspec.field(default=b"", name="per_user_db:decoded")

    def __post_init__(self) -> None:
        self.value = decode_base64(self.base64, "base64")


_WireValue = _Null | _Integer | _Float | _Text | _Blob


# --- results ------------------------------------------------------------------------------


class _Col(msgspec.Struct):
    name: str | None = None
    decltype: str | None = None


class _StmtResult(msgspec.Struct):
    cols: list[_Col]
    rows: list[list[_WireValue]]
    affected_row_count: int
    last_insert_rowid: int | None = None
    rows_read: int | None = None
    rows_written: int | None = None
    query_duration_ms: float | None = None


class _Error(msgspec.Struct):
    message: str
    code: str | None = None


class _BatchResult(msgspec.Struct):
    step_results: list[_StmtResult | None]
    step_errors: list[_Error | None]


class _Param(msgspec.Struct):
    name: str | None = None


class _DescribeResult(msgspec.Struct):
    params: list[_Param]
    cols: list[_Col]
    is_explain: bool
    is_readonly: bool


class _Execute(msgspec.Struct, tag="execute"):
    result: _StmtResult


class _Batch(msgspec.Struct, tag="batch"):
    result: _BatchResult


class _Describe(msgspec.Struct, tag="describe"):
    result: _DescribeResult


class _GetAutocommit(msgspec.Struct, tag="get_autocommit"):
    is_autocommit: bool


class _Sequence(msgspec.Struct, tag="sequence"):
    pass


class _StoreSql(msgspec.Struct, tag="store_sql"):
    pass


class _CloseSql(msgspec.Struct, tag="close_sql"):
    pass


class _Close(msgspec.Struct, tag="close"):
    pass


_Response = (
    _Execute | _Batch | _Describe | _GetAutocommit | _Sequence | _StoreSql | _CloseSql | _Close
)


class _Ok(msgspec.Struct, tag="ok"):
    response: _Response


class _StreamError(msgspec.Struct, tag="error"):
    error: _Error


class _Pipeline(msgspec.Struct):
    results: list[_Ok | _StreamError]
    baton: str | None = None
    base_url: str | None = None


_decoder = msgspec.json.Decoder(_Pipeline, strict=False)
_MISSING_FIELD = re.compile(r"Object missing required field `(.+)`")


# --- from structs to the codec's values ---------------------------------------------------


class _Malformed(Exception):
    """A problem found below a result whose JSON path the caller knows."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem


def _row(row: list[_WireValue]) -> tuple[Value, ...]:
    values = [v.value for v in row]
    if None in values:  # a NULL, or a non-finite float the server could not spell
        values = [math.nan if type(v) is _Float and v.value is None else v.value for v in row]
    return tuple(values)


def _cols(cols: list[_Col]) -> tuple[Col, ...]:
    return tuple([Col(name=c.name, decltype=c.decltype) for c in cols])


def _stmt_result(raw: _StmtResult) -> StmtResult:
    width = len(raw.cols)
    rows = raw.rows
    for index, row in enumerate(rows):
        if len(row) != width:
            raise _Malformed(
                f".rows[{index}]", f"has {len(row)} values but there are {width} columns"
            )
    return StmtResult(
        cols=_cols(raw.cols),
        rows=tuple(map(_row, rows)),
        affected_row_count=raw.affected_row_count,
        last_insert_rowid=raw.last_insert_rowid,
        rows_read=raw.rows_read or 0,
        rows_written=raw.rows_written or 0,
        query_duration_ms=raw.query_duration_ms or 0.0,
    )


def _error(raw: _Error) -> HranaError:
    return HranaError(message=raw.message, code=raw.code)


def _batch_result(raw: _BatchResult) -> BatchResult:
    if len(raw.step_results) != len(raw.step_errors):
        raise _Malformed(
            "",
            f"{len(raw.step_results)} step_results but {len(raw.step_errors)} step_errors; "
            "expected one of each per step",
        )
    results: list[StmtResult | None] = []
    for i, (result, error) in enumerate(zip(raw.step_results, raw.step_errors, strict=True)):
        if result is None:
            results.append(None)
            continue
        if error is not None:
            raise _Malformed("", f"step {i} has both a result and an error")
        try:
            results.append(_stmt_result(result))
        except _Malformed as exc:
            raise _Malformed(f".step_results[{i}]{exc.path}", exc.problem) from None
    return BatchResult(
        step_results=tuple(results),
        step_errors=tuple([None if e is None else _error(e) for e in raw.step_errors]),
    )


def _execute(raw: _Execute) -> StreamResponse:
    return ExecuteResponse(result=_stmt_result(raw.result))


def _batch(raw: _Batch) -> StreamResponse:
    return BatchResponse(result=_batch_result(raw.result))


def _describe(raw: _Describe) -> StreamResponse:
    result = raw.result
    return DescribeResponse(
        result=DescribeResult(
            params=tuple(DescribeParam(name=p.name) for p in result.params),
            cols=_cols(result.cols),
            is_explain=result.is_explain,
            is_readonly=result.is_readonly,
        )
    )


def _get_autocommit(raw: _GetAutocommit) -> StreamResponse:
    return GetAutocommitResponse(is_autocommit=raw.is_autocommit)


_SEQUENCE, _STORE_SQL = SequenceResponse(), StoreSqlResponse()
_CLOSE_SQL, _CLOSE = CloseSqlResponse(), CloseResponse()
# Per wire type: its name, and how it becomes the codec's value (responses without a body
# are immutable, so one instance serves every pipeline).
_RESPONSES: dict[type[object], tuple[str, Callable[[Any], StreamResponse]]] = {
    _Execute: ("execute", _execute),
    _Batch: ("batch", _batch),
    _Describe: ("describe", _describe),
    _GetAutocommit: ("get_autocommit", _get_autocommit),
    _Sequence: ("sequence", lambda _: _SEQUENCE),
    _StoreSql: ("store_sql", lambda _: _STORE_SQL),
    _CloseSql: ("close_sql", lambda _: _CLOSE_SQL),
    _Close: ("close", lambda _: _CLOSE),
}


def decode_pipeline_response(
    body: bytes | str, *, requests: Sequence[StreamRequest] | None = None
) -> PipelineResponse:
    """Parse a pipeline response body (client side); :class:`ProtocolError` if malformed.

    Given the ``requests`` that were sent, also check that there is one result per request
    and that each successful response echoes its request's type.
    """
    try:
        raw = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_with_path(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"body: not valid JSON ({exc})") from None
    if requests is not None and len(raw.results) != len(requests):
        raise ProtocolError(
            f"body.results: {len(raw.results)} results for {len(requests)} requests"
        )
    results: list[StreamResult] = []
    for index, item in enumerate(raw.results):
        if type(item) is _StreamError:
            results.append(StreamError(error=_error(item.error)))
            continue
        assert type(item) is _Ok
        name, convert = _RESPONSES[type(item.response)]
        if requests is not None and request_type(requests[index]) != name:
            raise ProtocolError(
                f"body.results[{index}].response.type: {name!r} does not echo the request "
                f"type {request_type(requests[index])!r}"
            )
        try:
            results.append(StreamOk(response=convert(item.response)))
        except _Malformed as exc:
            where = f"body.results[{index}].response.result{exc.path}"
            raise ProtocolError(f"{where}: {exc.problem}") from None
    return PipelineResponse(baton=raw.baton, base_url=raw.base_url, results=tuple(results))


def _with_path(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.results[0]...`"; lead with the path,
    # spelled as the rest of the codec spells it.
    problem, sep, path = message.rpartition(" - at `")
    if not sep:
        problem, path = message, "$"
    where = "body" + path.rstrip("`")[1:]
    missing = _MISSING_FIELD.fullmatch(problem)
    if missing:
        return f"{where}.{missing[1]}: required field is missing"
    return f"{where}: {problem}"
