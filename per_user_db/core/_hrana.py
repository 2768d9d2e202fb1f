"""Hrana over HTTP, as values: the JSON codec for both ends of the protocol.

The client encodes :class:`PipelineRequest` bodies and decodes :class:`PipelineResponse`
bodies; the local server (``per_user_db.dev``) does the reverse. Both ends share one set of
frozen value types, so a round trip through this module is the identity and the tests can
prove it with Hypothesis.

Nothing here performs I/O: bytes in, values out (and back). Every malformed input raises
:class:`ProtocolError` with a message naming the JSON path that was wrong, so a bug report
can quote it. Values that cannot travel in Hrana JSON (integers beyond 64 bits, NaN and
infinities) raise :class:`ValueNotRepresentable` when encoding.

Protocol facts followed here: integers travel as decimal strings, blobs as standard
base64 (padding optional when decoding), one statement per ``sql``, a batch step may only
refer to earlier steps, and the ``error`` condition means "not ok", so it is true for a
skipped step.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "AndCond",
    "Batch",
    "BatchRequest",
    "BatchResponse",
    "BatchResult",
    "BatchStep",
    "CloseRequest",
    "CloseResponse",
    "CloseSqlRequest",
    "CloseSqlResponse",
    "Col",
    "Cond",
    "CursorEntry",
    "CursorErrorEntry",
    "CursorHeader",
    "CursorRequest",
    "DescribeParam",
    "DescribeRequest",
    "DescribeResponse",
    "DescribeResult",
    "ErrorCond",
    "ExecuteRequest",
    "ExecuteResponse",
    "GetAutocommitRequest",
    "GetAutocommitResponse",
    "HranaError",
    "IsAutocommitCond",
    "NotCond",
    "OkCond",
    "OrCond",
    "PipelineRequest",
    "PipelineResponse",
    "ProtocolError",
    "RowEntry",
    "SequenceRequest",
    "SequenceResponse",
    "StepBeginEntry",
    "StepEndEntry",
    "StepErrorEntry",
    "Stmt",
    "StmtResult",
    "StoreSqlRequest",
    "StoreSqlResponse",
    "StreamError",
    "StreamOk",
    "StreamRequest",
    "StreamResponse",
    "StreamResult",
    "Value",
    "ValueNotRepresentable",
    "condition_problem",
    "decode_batch",
    "decode_batch_result",
    "decode_cursor_entry",
    "decode_cursor_header",
    "decode_cursor_request",
    "decode_pipeline_request",
    "decode_pipeline_response",
    "decode_stmt",
    "decode_stmt_result",
    "decode_value",
    "encode_batch",
    "encode_cursor_entry",
    "encode_cursor_header",
    "encode_cursor_request",
    "encode_error",
    "encode_pipeline_request",
    "encode_pipeline_response",
    "encode_stmt",
    "encode_stream_response",
    "encode_value",
    "evaluate_condition",
    "request_type",
    "response_type",
]

Value: TypeAlias = int | float | str | bytes | None
"""A SQLite value as it travels: NULL, INTEGER, REAL, TEXT or BLOB."""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# int() would also accept "+5", " 5", "5_000" and non-ASCII digits; the wire format is
# plain ASCII decimal, and anything else is a sign of a confused peer.
_DECIMAL = re.compile(r"-?[0-9]+\Z")

_T = TypeVar("_T")


class ProtocolError(ValueError):
    """A Hrana message was malformed; the message names the JSON path and the problem."""


class ValueNotRepresentable(ValueError):
    """A Python value has no Hrana JSON form (an integer beyond 64 bits, NaN, infinity)."""


# --- values ------------------------------------------------------------------------------


def encode_value(value: object) -> dict[str, object]:
    """Encode one SQL value as a Hrana JSON object.

    ``bool`` travels as an integer (SQLite has no boolean type). Raises
    :class:`ValueNotRepresentable` for integers outside the signed 64-bit range and for
    non-finite floats, and :class:`TypeError` for anything that is not a SQL value.
    """
    match value:
        case None:
            return {"type": "null"}
        case bool():
            return {"type": "integer", "value": "1" if value else "0"}
        case int():
            if not INT64_MIN <= value <= INT64_MAX:
                raise ValueNotRepresentable(
                    f"integer {value} does not fit in SQLite's signed 64-bit INTEGER; "
                    "store it as TEXT or BLOB instead"
                )
            return {"type": "integer", "value": str(value)}
        case float():
            if not math.isfinite(value):
                # Turso and @libsql/client reject NaN/Infinity, and JSON has no literal
                # for them; refusing here beats a server error far from the cause.
                raise ValueNotRepresentable(
                    f"float {value!r} cannot travel in Hrana JSON (only finite floats can); "
                    "store NULL or a sentinel instead"
                )
            return {"type": "float", "value": value}
        case str():
            return {"type": "text", "value": value}
        case bytes() | bytearray() | memoryview():
            return {"type": "blob", "base64": base64.b64encode(bytes(value)).decode("ascii")}
        case _:
            raise TypeError(
                f"cannot send a value of type {type(value).__name__} as a SQL value; "
                "use None, int, float, str or bytes"
            )


def decode_value(obj: object, where: str = "value") -> Value:
    """Decode one Hrana JSON value; raises :class:`ProtocolError` if it is malformed.

    A float whose value is ``null`` decodes as ``math.nan``: Turso sends ``null`` for a
    non-finite REAL because JSON cannot carry it, and NaN is the one float that says
    "a float we could not see" without pretending to be NULL, which is a different SQL
    value (``IS NULL`` is false for it in the database).
    """
    d = _as_object(obj, where)
    kind = _get_str(d, "type", where)
    match kind:
        case "null":
            return None
        case "integer":
            raw = d.get("value")
            if isinstance(raw, str):
                if not _DECIMAL.match(raw):
                    raise ProtocolError(
                        f"{where}.value: integer must be a decimal string, got {raw!r}"
                    )
                number = int(raw)
            elif isinstance(raw, int) and not isinstance(raw, bool):
                number = raw  # some servers send small integers as JSON numbers
            else:
                raise ProtocolError(
                    f"{where}.value: integer must be a decimal string, got {_describe(raw)}"
                )
            if not INT64_MIN <= number <= INT64_MAX:
                raise ProtocolError(f"{where}.value: integer {raw} is outside the 64-bit range")
            return number
        case "float":
            raw = d.get("value", _MISSING)
            if raw is None:
                return math.nan
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return float(raw)
            raise ProtocolError(f"{where}.value: float must be a JSON number, got {_describe(raw)}")
        case "text":
            return _get_str(d, "value", where)
        case "blob":
            return _decode_base64(_get_str(d, "base64", where), f"{where}.base64")
        case _:
            raise ProtocolError(
                f"{where}.type: unknown value type {kind!r} "
                "(expected null, integer, float, text or blob)"
            )


def _decode_base64(text: str, where: str) -> bytes:
    stripped = text.rstrip("=")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"{where}: not valid base64 ({exc})") from None


# --- statements, conditions and batches ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Stmt:
    """One SQL statement: its text (or the id of a stored text) and its arguments."""

    sql: str | None = None
    sql_id: int | None = None
    args: tuple[Value, ...] = ()
    named_args: tuple[tuple[str, Value], ...] = ()
    want_rows: bool = True

    def __post_init__(self) -> None:
        if (self.sql is None) == (self.sql_id is None):
            raise ValueError("a statement needs exactly one of sql and sql_id")
        if self.args and self.named_args:
            raise ValueError("a statement takes positional args or named args, not both")


@dataclass(frozen=True, slots=True, kw_only=True)
class OkCond:
    """True when batch step ``step`` ran and succeeded."""

    step: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorCond:
    """True when batch step ``step`` did not succeed: it failed *or was skipped*."""

    step: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NotCond:
    cond: Cond


@dataclass(frozen=True, slots=True, kw_only=True)
class AndCond:
    conds: tuple[Cond, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrCond:
    conds: tuple[Cond, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class IsAutocommitCond:
    """True when the connection is outside a transaction (Hrana 3 only)."""


Cond: TypeAlias = OkCond | ErrorCond | NotCond | AndCond | OrCond | IsAutocommitCond


def condition_problem(cond: Cond, step_index: int) -> str | None:
    """Why ``cond`` cannot guard step ``step_index`` (it refers to a later step), or None."""
    match cond:
        case OkCond(step=step) | ErrorCond(step=step):
            if not 0 <= step < step_index:
                return (
                    f"condition of step {step_index} refers to step {step}; "
                    "a condition may only refer to earlier steps"
                )
            return None
        case NotCond(cond=inner):
            return condition_problem(inner, step_index)
        case AndCond(conds=conds) | OrCond(conds=conds):
            for inner in conds:
                problem = condition_problem(inner, step_index)
                if problem is not None:
                    return problem
            return None
        case IsAutocommitCond():
            return None


def evaluate_condition(cond: Cond, outcomes: Sequence[bool | None], *, is_autocommit: bool) -> bool:
    """Evaluate a batch condition for the step after ``outcomes``.

    ``outcomes[i]`` is True when step *i* succeeded, False when it failed and None when it
    was skipped. ``error`` is "not ok", as the server evaluates it, so it is true for a
    skipped step too.
    """
    match cond:
        case OkCond(step=step) | ErrorCond(step=step):
            if not 0 <= step < len(outcomes):
                raise ProtocolError(
                    f"condition refers to step {step}, but only steps 0..{len(outcomes) - 1} "
                    "ran before this one"
                )
            ok = outcomes[step] is True
            return ok if isinstance(cond, OkCond) else not ok
        case NotCond(cond=inner):
            return not evaluate_condition(inner, outcomes, is_autocommit=is_autocommit)
        case AndCond(conds=conds):
            return all(evaluate_condition(c, outcomes, is_autocommit=is_autocommit) for c in conds)
        case OrCond(conds=conds):
            return any(evaluate_condition(c, outcomes, is_autocommit=is_autocommit) for c in conds)
        case IsAutocommitCond():
            return is_autocommit


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStep:
    stmt: Stmt
    condition: Cond | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """Statements run in order on one connection, each guarded by an optional condition."""

    steps: tuple[BatchStep, ...]

    def __post_init__(self) -> None:
        for index, step in enumerate(self.steps):
            if step.condition is not None:
                problem = condition_problem(step.condition, index)
                if problem is not None:
                    raise ValueError(problem)


# --- stream requests ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecuteRequest:
    stmt: Stmt


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRequest:
    batch: Batch


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceRequest:
    """Several semicolon-separated statements without arguments or results."""

    sql: str | None = None
    sql_id: int | None = None

    def __post_init__(self) -> None:
        if (self.sql is None) == (self.sql_id is None):
            raise ValueError("a sequence needs exactly one of sql and sql_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeRequest:
    sql: str | None = None
    sql_id: int | None = None

    def __post_init__(self) -> None:
        if (self.sql is None) == (self.sql_id is None):
            raise ValueError("a describe needs exactly one of sql and sql_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSqlRequest:
    """Remember ``sql`` under ``sql_id`` for later requests of the same stream."""

    sql_id: int
    sql: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseSqlRequest:
    sql_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseRequest:
    """Close the stream; must be the last request of its pipeline."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAutocommitRequest:
    """Ask whether the stream is outside a transaction (Hrana 3 only)."""


StreamRequest: TypeAlias = (
    ExecuteRequest
    | BatchRequest
    | SequenceRequest
    | DescribeRequest
    | StoreSqlRequest
    | CloseSqlRequest
    | CloseRequest
    | GetAutocommitRequest
)

# --- results and responses ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Col:
    """A result column: its name and declared type (None for an expression)."""

    name: str | None
    decltype: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StmtResult:
    cols: tuple[Col, ...]
    rows: tuple[tuple[Value, ...], ...]
    affected_row_count: int
    last_insert_rowid: int | None
    rows_read: int = 0
    rows_written: int = 0
    query_duration_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HranaError:
    """An error the server reported in-band: a message and an optional code such as
    ``SQLITE_CONSTRAINT_FOREIGNKEY``, ``SQL_PARSE_ERROR`` or ``STREAM_EXPIRED``."""

    message: str
    code: str | None = None

    def __str__(self) -> str:
        return self.message if self.code is None else f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """Per step: a result, or an error, or neither (the step was skipped)."""

    step_results: tuple[StmtResult | None, ...]
    step_errors: tuple[HranaError | None, ...]

    def __post_init__(self) -> None:
        if len(self.step_results) != len(self.step_errors):
            raise ValueError("step_results and step_errors must have one entry per step")


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeParam:
    name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeResult:
    params: tuple[DescribeParam, ...]
    cols: tuple[Col, ...]
    is_explain: bool
    is_readonly: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecuteResponse:
    result: StmtResult


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResponse:
    result: BatchResult


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceResponse:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeResponse:
    result: DescribeResult


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSqlResponse:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseSqlResponse:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseResponse:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAutocommitResponse:
    is_autocommit: bool


StreamResponse: TypeAlias = (
    ExecuteResponse
    | BatchResponse
    | SequenceResponse
    | DescribeResponse
    | StoreSqlResponse
    | CloseSqlResponse
    | CloseResponse
    | GetAutocommitResponse
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOk:
    response: StreamResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamError:
    error: HranaError


StreamResult: TypeAlias = StreamOk | StreamError


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineRequest:
    """A ``POST …/pipeline`` body. A null ``baton`` opens a new stream."""

    baton: str | None
    requests: tuple[StreamRequest, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineResponse:
    """A pipeline reply: one result per request. A null ``baton`` means the stream is
    closed; a non-null ``base_url`` is where later requests of the stream must go."""

    baton: str | None
    base_url: str | None
    results: tuple[StreamResult, ...]


_REQUEST_TYPES: dict[type[object], str] = {
    ExecuteRequest: "execute",
    BatchRequest: "batch",
    SequenceRequest: "sequence",
    DescribeRequest: "describe",
    StoreSqlRequest: "store_sql",
    CloseSqlRequest: "close_sql",
    CloseRequest: "close",
    GetAutocommitRequest: "get_autocommit",
}
_RESPONSE_TYPES: dict[type[object], str] = {
    ExecuteResponse: "execute",
    BatchResponse: "batch",
    SequenceResponse: "sequence",
    DescribeResponse: "describe",
    StoreSqlResponse: "store_sql",
    CloseSqlResponse: "close_sql",
    CloseResponse: "close",
    GetAutocommitResponse: "get_autocommit",
}


def request_type(request: StreamRequest) -> str:
    """The wire name of a request (``"execute"``, ``"batch"``, …)."""
    return _REQUEST_TYPES[type(request)]


def response_type(response: StreamResponse) -> str:
    """The wire name of a response; a correct server echoes the request's name."""
    return _RESPONSE_TYPES[type(response)]


# --- JSON helpers -------------------------------------------------------------------------

_MISSING = object()


def _describe(raw: object) -> str:
    if raw is _MISSING:
        return "nothing (the field is missing)"
    if raw is None:
        return "null"
    match raw:
        case bool():
            kind = "a boolean"
        case int() | float():
            kind = "a number"
        case str():
            kind = "a string"
        case list():
            kind = "an array"
        case dict():
            kind = "an object"
        case _:
            kind = type(raw).__name__
    return f"{kind} ({_short(raw)})"


def _short(raw: object) -> str:
    text = json.dumps(raw) if isinstance(raw, str | int | float | bool) else repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _reject_constant(name: str) -> object:
    raise ProtocolError(f"body: {name} is not valid JSON")


def _load_json(body: bytes | str, where: str) -> object:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ProtocolError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{where}: not valid JSON ({exc})") from None


def _dump_json(obj: object) -> bytes:
    return json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()


def _as_object(raw: object, where: str) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: expected an object, got {_describe(raw)}")
    return raw


def _get(d: Mapping[str, object], key: str, where: str) -> object:
    if key not in d:
        raise ProtocolError(f"{where}.{key}: required field is missing")
    return d[key]


def _get_str(d: Mapping[str, object], key: str, where: str) -> str:
    raw = _get(d, key, where)
    if not isinstance(raw, str):
        raise ProtocolError(f"{where}.{key}: expected a string, got {_describe(raw)}")
    return raw


def _get_opt_str(d: Mapping[str, object], key: str, where: str) -> str | None:
    raw = d.get(key)
    if raw is not None and not isinstance(raw, str):
        raise ProtocolError(f"{where}.{key}: expected a string or null, got {_describe(raw)}")
    return raw


def _check_int(raw: object, where: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ProtocolError(f"{where}: expected an integer, got {_describe(raw)}")
    return raw


def _get_int(d: Mapping[str, object], key: str, where: str) -> int:
    return _check_int(_get(d, key, where), f"{where}.{key}")


def _get_bool(d: Mapping[str, object], key: str, where: str) -> bool:
    raw = _get(d, key, where)
    if not isinstance(raw, bool):
        raise ProtocolError(f"{where}.{key}: expected true or false, got {_describe(raw)}")
    return raw


def _get_list(d: Mapping[str, object], key: str, where: str) -> list[object]:
    raw = _get(d, key, where)
    if not isinstance(raw, list):
        raise ProtocolError(f"{where}.{key}: expected an array, got {_describe(raw)}")
    return raw


def _get_opt_list(d: Mapping[str, object], key: str, where: str) -> list[object]:
    if d.get(key) is None:
        return []
    return _get_list(d, key, where)


def _each(items: list[object], where: str, decode: Callable[[object, str], _T]) -> tuple[_T, ...]:
    return tuple(decode(item, f"{where}[{i}]") for i, item in enumerate(items))


def _rowid(raw: object, where: str) -> int | None:
    # The spec says string; the cursor endpoint and older servers send a number.
    if raw is None:
        return None
    if isinstance(raw, str) and _DECIMAL.match(raw):
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    raise ProtocolError(f"{where}: expected an integer string or null, got {_describe(raw)}")


# --- encoding -----------------------------------------------------------------------------


def _enc_stmt(stmt: Stmt) -> dict[str, object]:
    out: dict[str, object] = {}
    if stmt.sql is not None:
        out["sql"] = stmt.sql
    else:
        out["sql_id"] = stmt.sql_id
    out["args"] = [encode_value(v) for v in stmt.args]
    out["named_args"] = [{"name": n, "value": encode_value(v)} for n, v in stmt.named_args]
    out["want_rows"] = stmt.want_rows
    return out


def _enc_cond(cond: Cond) -> dict[str, object]:
    match cond:
        case OkCond(step=step):
            return {"type": "ok", "step": step}
        case ErrorCond(step=step):
            return {"type": "error", "step": step}
        case NotCond(cond=inner):
            return {"type": "not", "cond": _enc_cond(inner)}
        case AndCond(conds=conds):
            return {"type": "and", "conds": [_enc_cond(c) for c in conds]}
        case OrCond(conds=conds):
            return {"type": "or", "conds": [_enc_cond(c) for c in conds]}
        case IsAutocommitCond():
            return {"type": "is_autocommit"}


def _enc_batch(batch: Batch) -> dict[str, object]:
    return {
        "steps": [
            {
                "stmt": _enc_stmt(step.stmt),
                "condition": None if step.condition is None else _enc_cond(step.condition),
            }
            for step in batch.steps
        ]
    }


def _enc_sql_or_id(sql: str | None, sql_id: int | None) -> dict[str, object]:
    return {"sql": sql} if sql is not None else {"sql_id": sql_id}


def _enc_request(request: StreamRequest) -> dict[str, object]:
    body: dict[str, object]
    match request:
        case ExecuteRequest(stmt=stmt):
            body = {"stmt": _enc_stmt(stmt)}
        case BatchRequest(batch=batch):
            body = {"batch": _enc_batch(batch)}
        case SequenceRequest(sql=sql, sql_id=sql_id) | DescribeRequest(sql=sql, sql_id=sql_id):
            body = _enc_sql_or_id(sql, sql_id)
        case StoreSqlRequest(sql_id=sql_id, sql=sql):
            body = {"sql_id": sql_id, "sql": sql}
        case CloseSqlRequest(sql_id=sql_id):
            body = {"sql_id": sql_id}
        case CloseRequest() | GetAutocommitRequest():
            body = {}
    return {"type": request_type(request), **body}


def _enc_col(col: Col) -> dict[str, object]:
    return {"name": col.name, "decltype": col.decltype}


def _enc_stmt_result(result: StmtResult) -> dict[str, object]:
    return {
        "cols": [_enc_col(c) for c in result.cols],
        "rows": [[encode_value(v) for v in row] for row in result.rows],
        "affected_row_count": result.affected_row_count,
        "last_insert_rowid": (
            None if result.last_insert_rowid is None else str(result.last_insert_rowid)
        ),
        "rows_read": result.rows_read,
        "rows_written": result.rows_written,
        "query_duration_ms": result.query_duration_ms,
    }


def _enc_error(error: HranaError) -> dict[str, object]:
    out: dict[str, object] = {"message": error.message}
    if error.code is not None:
        out["code"] = error.code
    return out


def _enc_response(response: StreamResponse) -> dict[str, object]:
    body: dict[str, object]
    match response:
        case ExecuteResponse(result=result):
            body = {"result": _enc_stmt_result(result)}
        case BatchResponse(result=batch):
            body = {
                "result": {
                    "step_results": [
                        None if r is None else _enc_stmt_result(r) for r in batch.step_results
                    ],
                    "step_errors": [
                        None if e is None else _enc_error(e) for e in batch.step_errors
                    ],
                }
            }
        case DescribeResponse(result=described):
            body = {
                "result": {
                    "params": [{"name": p.name} for p in described.params],
                    "cols": [_enc_col(c) for c in described.cols],
                    "is_explain": described.is_explain,
                    "is_readonly": described.is_readonly,
                }
            }
        case GetAutocommitResponse(is_autocommit=is_autocommit):
            body = {"is_autocommit": is_autocommit}
        case SequenceResponse() | StoreSqlResponse() | CloseSqlResponse() | CloseResponse():
            body = {}
    return {"type": response_type(response), **body}


def _enc_stream_result(result: StreamResult) -> dict[str, object]:
    match result:
        case StreamOk(response=response):
            return {"type": "ok", "response": _enc_response(response)}
        case StreamError(error=error):
            return {"type": "error", "error": _enc_error(error)}


def encode_pipeline_request(baton: str | None, requests: Sequence[StreamRequest]) -> bytes:
    """The JSON body of ``POST …/v3/pipeline`` (or ``v2``)."""
    return _dump_json({"baton": baton, "requests": [_enc_request(r) for r in requests]})


def encode_pipeline_response(response: PipelineResponse) -> bytes:
    """The JSON body a server sends back for a pipeline."""
    return _dump_json(
        {
            "baton": response.baton,
            "base_url": response.base_url,
            "results": [_enc_stream_result(r) for r in response.results],
        }
    )


# --- decoding -----------------------------------------------------------------------------


def _dec_args(d: Mapping[str, object], where: str) -> tuple[Value, ...]:
    return _each(_get_opt_list(d, "args", where), f"{where}.args", decode_value)


def _dec_named_arg(raw: object, where: str) -> tuple[str, Value]:
    d = _as_object(raw, where)
    return _get_str(d, "name", where), decode_value(_get(d, "value", where), f"{where}.value")


def _dec_sql_or_id(d: Mapping[str, object], where: str) -> tuple[str | None, int | None]:
    sql = _get_opt_str(d, "sql", where)
    raw_id = d.get("sql_id")
    sql_id = None if raw_id is None else _check_int(raw_id, f"{where}.sql_id")
    if (sql is None) == (sql_id is None):
        raise ProtocolError(f"{where}: exactly one of sql and sql_id is required")
    return sql, sql_id


def _dec_stmt(raw: object, where: str) -> Stmt:
    d = _as_object(raw, where)
    sql, sql_id = _dec_sql_or_id(d, where)
    args = _dec_args(d, where)
    named = _each(_get_opt_list(d, "named_args", where), f"{where}.named_args", _dec_named_arg)
    if args and named:
        raise ProtocolError(f"{where}: both args and named_args are non-empty; send only one")
    want_rows = d.get("want_rows", True)
    if not isinstance(want_rows, bool):
        raise ProtocolError(
            f"{where}.want_rows: expected true or false, got {_describe(want_rows)}"
        )
    return Stmt(sql=sql, sql_id=sql_id, args=args, named_args=named, want_rows=want_rows)


def _dec_cond(raw: object, where: str) -> Cond:
    d = _as_object(raw, where)
    kind = _get_str(d, "type", where)
    match kind:
        case "ok":
            return OkCond(step=_get_int(d, "step", where))
        case "error":
            return ErrorCond(step=_get_int(d, "step", where))
        case "not":
            return NotCond(cond=_dec_cond(_get(d, "cond", where), f"{where}.cond"))
        case "and":
            return AndCond(conds=_each(_get_list(d, "conds", where), f"{where}.conds", _dec_cond))
        case "or":
            return OrCond(conds=_each(_get_list(d, "conds", where), f"{where}.conds", _dec_cond))
        case "is_autocommit":
            return IsAutocommitCond()
        case _:
            raise ProtocolError(f"{where}.type: unknown condition type {kind!r}")


def _dec_batch(raw: object, where: str) -> Batch:
    d = _as_object(raw, where)
    steps: list[BatchStep] = []
    for index, raw_step in enumerate(_get_list(d, "steps", where)):
        step_where = f"{where}.steps[{index}]"
        sd = _as_object(raw_step, step_where)
        stmt = _dec_stmt(_get(sd, "stmt", step_where), f"{step_where}.stmt")
        raw_cond = sd.get("condition")
        cond = None if raw_cond is None else _dec_cond(raw_cond, f"{step_where}.condition")
        if cond is not None:
            problem = condition_problem(cond, index)
            if problem is not None:
                raise ProtocolError(f"{step_where}.condition: {problem}")
        steps.append(BatchStep(stmt=stmt, condition=cond))
    return Batch(steps=tuple(steps))


def _dec_request(raw: object, where: str) -> StreamRequest:
    d = _as_object(raw, where)
    kind = _get_str(d, "type", where)
    match kind:
        case "execute":
            return ExecuteRequest(stmt=_dec_stmt(_get(d, "stmt", where), f"{where}.stmt"))
        case "batch":
            return BatchRequest(batch=_dec_batch(_get(d, "batch", where), f"{where}.batch"))
        case "sequence":
            sql, sql_id = _dec_sql_or_id(d, where)
            return SequenceRequest(sql=sql, sql_id=sql_id)
        case "describe":
            sql, sql_id = _dec_sql_or_id(d, where)
            return DescribeRequest(sql=sql, sql_id=sql_id)
        case "store_sql":
            return StoreSqlRequest(
                sql_id=_get_int(d, "sql_id", where), sql=_get_str(d, "sql", where)
            )
        case "close_sql":
            return CloseSqlRequest(sql_id=_get_int(d, "sql_id", where))
        case "close":
            return CloseRequest()
        case "get_autocommit":
            return GetAutocommitRequest()
        case _:
            raise ProtocolError(f"{where}.type: unknown request type {kind!r}")


def decode_pipeline_request(body: bytes | str) -> PipelineRequest:
    """Parse a pipeline request body (server side); :class:`ProtocolError` if malformed."""
    d = _as_object(_load_json(body, "body"), "body")
    baton = _get_opt_str(d, "baton", "body")
    requests = _each(_get_list(d, "requests", "body"), "body.requests", _dec_request)
    for index, request in enumerate(requests[:-1]):
        if isinstance(request, CloseRequest):
            raise ProtocolError(
                f"body.requests[{index}]: close must be the last request of a pipeline"
            )
    return PipelineRequest(baton=baton, requests=requests)


def _dec_col(raw: object, where: str) -> Col:
    d = _as_object(raw, where)
    return Col(name=_get_opt_str(d, "name", where), decltype=_get_opt_str(d, "decltype", where))


def _dec_row(raw: object, where: str) -> tuple[Value, ...]:
    if not isinstance(raw, list):
        raise ProtocolError(f"{where}: expected an array of values, got {_describe(raw)}")
    return _each(raw, where, decode_value)


def _opt_number(d: Mapping[str, object], key: str, where: str) -> float:
    raw = d.get(key)
    if raw is None:
        return 0.0
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        raise ProtocolError(f"{where}.{key}: expected a number, got {_describe(raw)}")
    return float(raw)


def _opt_int(d: Mapping[str, object], key: str, where: str) -> int:
    raw = d.get(key)
    return 0 if raw is None else _check_int(raw, f"{where}.{key}")


def _dec_stmt_result(raw: object, where: str) -> StmtResult:
    d = _as_object(raw, where)
    cols = _each(_get_list(d, "cols", where), f"{where}.cols", _dec_col)
    rows = _each(_get_list(d, "rows", where), f"{where}.rows", _dec_row)
    for i, row in enumerate(rows):
        if len(row) != len(cols):
            raise ProtocolError(
                f"{where}.rows[{i}]: has {len(row)} values but there are {len(cols)} columns"
            )
    return StmtResult(
        cols=cols,
        rows=rows,
        affected_row_count=_get_int(d, "affected_row_count", where),
        last_insert_rowid=_rowid(d.get("last_insert_rowid"), f"{where}.last_insert_rowid"),
        rows_read=_opt_int(d, "rows_read", where),
        rows_written=_opt_int(d, "rows_written", where),
        query_duration_ms=_opt_number(d, "query_duration_ms", where),
    )


def _dec_error(raw: object, where: str) -> HranaError:
    d = _as_object(raw, where)
    return HranaError(message=_get_str(d, "message", where), code=_get_opt_str(d, "code", where))


def _dec_opt(decode: Callable[[object, str], _T]) -> Callable[[object, str], _T | None]:
    def decode_opt(raw: object, where: str) -> _T | None:
        return None if raw is None else decode(raw, where)

    return decode_opt


def _dec_batch_result(raw: object, where: str) -> BatchResult:
    d = _as_object(raw, where)
    results = _each(
        _get_list(d, "step_results", where), f"{where}.step_results", _dec_opt(_dec_stmt_result)
    )
    errors = _each(_get_list(d, "step_errors", where), f"{where}.step_errors", _dec_opt(_dec_error))
    if len(results) != len(errors):
        raise ProtocolError(
            f"{where}: {len(results)} step_results but {len(errors)} step_errors; "
            "expected one of each per step"
        )
    for i, (result, error) in enumerate(zip(results, errors, strict=True)):
        if result is not None and error is not None:
            raise ProtocolError(f"{where}: step {i} has both a result and an error")
    return BatchResult(step_results=results, step_errors=errors)


def _dec_param(raw: object, where: str) -> DescribeParam:
    return DescribeParam(name=_get_opt_str(_as_object(raw, where), "name", where))


def _dec_describe_result(raw: object, where: str) -> DescribeResult:
    d = _as_object(raw, where)
    return DescribeResult(
        params=_each(_get_list(d, "params", where), f"{where}.params", _dec_param),
        cols=_each(_get_list(d, "cols", where), f"{where}.cols", _dec_col),
        is_explain=_get_bool(d, "is_explain", where),
        is_readonly=_get_bool(d, "is_readonly", where),
    )


def _dec_response(raw: object, where: str) -> StreamResponse:
    d = _as_object(raw, where)
    kind = _get_str(d, "type", where)
    match kind:
        case "execute":
            return ExecuteResponse(
                result=_dec_stmt_result(_get(d, "result", where), f"{where}.result")
            )
        case "batch":
            return BatchResponse(
                result=_dec_batch_result(_get(d, "result", where), f"{where}.result")
            )
        case "describe":
            return DescribeResponse(
                result=_dec_describe_result(_get(d, "result", where), f"{where}.result")
            )
        case "get_autocommit":
            return GetAutocommitResponse(is_autocommit=_get_bool(d, "is_autocommit", where))
        case "sequence":
            return SequenceResponse()
        case "store_sql":
            return StoreSqlResponse()
        case "close_sql":
            return CloseSqlResponse()
        case "close":
            return CloseResponse()
        case _:
            raise ProtocolError(f"{where}.type: unknown response type {kind!r}")


def _dec_stream_result(raw: object, where: str) -> StreamResult:
    d = _as_object(raw, where)
    kind = _get_str(d, "type", where)
    match kind:
        case "ok":
            return StreamOk(response=_dec_response(_get(d, "response", where), f"{where}.response"))
        case "error":
            return StreamError(error=_dec_error(_get(d, "error", where), f"{where}.error"))
        case _:
            raise ProtocolError(f"{where}.type: expected 'ok' or 'error', got {kind!r}")


def decode_pipeline_response(
    body: bytes | str, *, requests: Sequence[StreamRequest] | None = None
) -> PipelineResponse:
    """Parse a pipeline response body (client side); :class:`ProtocolError` if malformed.

    Given the ``requests`` that were sent, also check that there is one result per request
    and that each successful response echoes its request's type.
    """
    d = _as_object(_load_json(body, "body"), "body")
    baton = _get_opt_str(d, "baton", "body")
    base_url = _get_opt_str(d, "base_url", "body")
    results = _each(_get_list(d, "results", "body"), "body.results", _dec_stream_result)
    if requests is not None:
        if len(results) != len(requests):
            raise ProtocolError(
                f"body.results: {len(results)} results for {len(requests)} requests"
            )
        for index, (request, result) in enumerate(zip(requests, results, strict=True)):
            if isinstance(result, StreamOk):
                sent, got = request_type(request), response_type(result.response)
                if sent != got:
                    raise ProtocolError(
                        f"body.results[{index}].response.type: {got!r} does not echo "
                        f"the request type {sent!r}"
                    )
    return PipelineResponse(baton=baton, base_url=base_url, results=results)


# --- single objects, for transports with their own framing (Hrana over WebSocket) --------


def encode_stmt(stmt: Stmt) -> dict[str, object]:
    """A statement as a Hrana JSON object."""
    return _enc_stmt(stmt)


def encode_batch(batch: Batch) -> dict[str, object]:
    """A batch as a Hrana JSON object."""
    return _enc_batch(batch)


def decode_stmt_result(raw: object) -> StmtResult:
    """A statement result from its Hrana JSON object; :class:`ProtocolError` if malformed."""
    return _dec_stmt_result(raw, "result")


def decode_batch_result(raw: object) -> BatchResult:
    """A batch result from its Hrana JSON object; :class:`ProtocolError` if malformed."""
    return _dec_batch_result(raw, "result")


def decode_stmt(raw: object, where: str = "stmt") -> Stmt:
    """A statement from its Hrana JSON object (server side); :class:`ProtocolError` names
    ``where`` in the path of a malformed field."""
    return _dec_stmt(raw, where)


def decode_batch(raw: object, where: str = "batch") -> Batch:
    """A batch from its Hrana JSON object (server side); :class:`ProtocolError` if malformed."""
    return _dec_batch(raw, where)


def encode_stream_response(response: StreamResponse) -> dict[str, object]:
    """A response as a Hrana JSON object: ``{"type": "execute", "result": {...}}`` etc.

    Raises :class:`ValueNotRepresentable` for a result holding a non-finite float.
    """
    return _enc_response(response)


def encode_error(error: HranaError) -> dict[str, object]:
    """An error as a Hrana JSON object: ``{"message": ..., "code": ...}``."""
    return _enc_error(error)


# --- cursor -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorRequest:
    """A ``POST …/v3/cursor`` body: one batch whose rows stream back line by line."""

    baton: str | None
    batch: Batch


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorHeader:
    """The first line of a cursor response."""

    baton: str | None
    base_url: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepBeginEntry:
    step: int
    cols: tuple[Col, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RowEntry:
    row: tuple[Value, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepEndEntry:
    affected_row_count: int
    last_insert_rowid: int | None
    rows_read: int = 0
    rows_written: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StepErrorEntry:
    step: int
    error: HranaError


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorErrorEntry:
    """The whole cursor failed; no more entries follow."""

    error: HranaError


CursorEntry: TypeAlias = (
    StepBeginEntry | RowEntry | StepEndEntry | StepErrorEntry | CursorErrorEntry
)


def encode_cursor_request(baton: str | None, batch: Batch) -> bytes:
    return _dump_json({"baton": baton, "batch": _enc_batch(batch)})


def decode_cursor_request(body: bytes | str) -> CursorRequest:
    d = _as_object(_load_json(body, "body"), "body")
    return CursorRequest(
        baton=_get_opt_str(d, "baton", "body"),
        batch=_dec_batch(_get(d, "batch", "body"), "body.batch"),
    )


def encode_cursor_header(header: CursorHeader) -> bytes:
    """The first line of a cursor response, newline included."""
    return _dump_json({"baton": header.baton, "base_url": header.base_url}) + b"\n"


def decode_cursor_header(line: bytes | str) -> CursorHeader:
    d = _as_object(_load_json(line, "cursor header"), "cursor header")
    return CursorHeader(
        baton=_get_opt_str(d, "baton", "cursor header"),
        base_url=_get_opt_str(d, "base_url", "cursor header"),
    )


def encode_cursor_entry(entry: CursorEntry) -> bytes:
    """One entry line of a cursor response, newline included."""
    obj: dict[str, object]
    match entry:
        case StepBeginEntry(step=step, cols=cols):
            obj = {"type": "step_begin", "step": step, "cols": [_enc_col(c) for c in cols]}
        case RowEntry(row=row):
            obj = {"type": "row", "row": [encode_value(v) for v in row]}
        case StepEndEntry():
            obj = {
                "type": "step_end",
                "affected_row_count": entry.affected_row_count,
                "last_insert_rowid": (
                    None if entry.last_insert_rowid is None else str(entry.last_insert_rowid)
                ),
                "rows_read": entry.rows_read,
                "rows_written": entry.rows_written,
            }
        case StepErrorEntry(step=step, error=error):
            obj = {"type": "step_error", "step": step, "error": _enc_error(error)}
        case CursorErrorEntry(error=error):
            obj = {"type": "error", "error": _enc_error(error)}
    return _dump_json(obj) + b"\n"


def decode_cursor_entry(line: bytes | str) -> CursorEntry:
    where = "cursor entry"
    d = _as_object(_load_json(line, where), where)
    kind = _get_str(d, "type", where)
    match kind:
        case "step_begin":
            return StepBeginEntry(
                step=_get_int(d, "step", where),
                cols=_each(_get_list(d, "cols", where), f"{where}.cols", _dec_col),
            )
        case "row":
            return RowEntry(row=_dec_row(_get(d, "row", where), f"{where}.row"))
        case "step_end":
            return StepEndEntry(
                affected_row_count=_get_int(d, "affected_row_count", where),
                last_insert_rowid=_rowid(d.get("last_insert_rowid"), f"{where}.last_insert_rowid"),
                rows_read=_opt_int(d, "rows_read", where),
                rows_written=_opt_int(d, "rows_written", where),
            )
        case "step_error":
            return StepErrorEntry(
                step=_get_int(d, "step", where),
                error=_dec_error(_get(d, "error", where), f"{where}.error"),
            )
        case "error":
            return CursorErrorEntry(error=_dec_error(_get(d, "error", where), f"{where}.error"))
        case _:
            raise ProtocolError(f"{where}.type: unknown cursor entry type {kind!r}")
