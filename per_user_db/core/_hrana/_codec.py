"""The JSON codec of Hrana over HTTP: pipeline bodies (both directions) and the single
objects that transports with their own framing (Hrana over WebSocket) need."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

from ._fields import (
    ProtocolError,
    _as_object,
    _check_int,
    _describe,
    _dump_json,
    _each,
    _get,
    _get_int,
    _get_list,
    _get_opt_list,
    _get_opt_str,
    _get_str,
    _load_json,
    _opt_int,
    _opt_number,
    _rowid,
)
from ._messages import (
    AndCond,
    Batch,
    BatchRequest,
    BatchResponse,
    BatchResult,
    BatchStep,
    CloseRequest,
    CloseResponse,
    CloseSqlRequest,
    CloseSqlResponse,
    Col,
    Cond,
    DescribeRequest,
    DescribeResponse,
    ErrorCond,
    ExecuteRequest,
    ExecuteResponse,
    GetAutocommitRequest,
    GetAutocommitResponse,
    HranaError,
    IsAutocommitCond,
    NotCond,
    OkCond,
    OrCond,
    PipelineRequest,
    PipelineResponse,
    SequenceRequest,
    SequenceResponse,
    Stmt,
    StmtResult,
    StoreSqlRequest,
    StoreSqlResponse,
    StreamError,
    StreamOk,
    StreamRequest,
    StreamResponse,
    StreamResult,
    condition_problem,
    request_type,
    response_type,
)
from ._values import Value, decode_value, encode_value
from ._wire_requests import decode_pipeline_request_fast

__all__ = [
    "decode_batch",
    "decode_batch_result",
    "decode_pipeline_request",
    "decode_stmt",
    "decode_stmt_result",
    "encode_batch",
    "encode_error",
    "encode_pipeline_request",
    "encode_pipeline_response",
    "encode_stmt",
    "encode_stream_response",
]

_T = TypeVar("_T")
_encode_json = msgspec.json.Encoder().encode

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
    """The JSON body of ``POST …/v3/pipeline`` (or ``v2``).

    Encoded by msgspec, ten times faster than ``json`` here: every value already went
    through :func:`encode_value`, which refuses what JSON cannot carry (NaN, infinities).
    """
    return _encode_json({"baton": baton, "requests": [_enc_request(r) for r in requests]})


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


MAX_CONDITION_DEPTH = 32
"""How deeply batch conditions may nest (``not``/``and``/``or``): far more than any client
builds, and a bound on the recursion a request can cause."""


def _dec_cond(raw: object, where: str, depth: int = 1) -> Cond:
    if depth > MAX_CONDITION_DEPTH:
        raise ProtocolError(f"{where}: conditions nest deeper than {MAX_CONDITION_DEPTH}")
    d = _as_object(raw, where)
    kind = _get_str(d, "type", where)

    def inner(item: object, path: str) -> Cond:
        return _dec_cond(item, path, depth + 1)

    match kind:
        case "ok":
            return OkCond(step=_get_int(d, "step", where))
        case "error":
            return ErrorCond(step=_get_int(d, "step", where))
        case "not":
            return NotCond(cond=inner(_get(d, "cond", where), f"{where}.cond"))
        case "and":
            return AndCond(conds=_each(_get_list(d, "conds", where), f"{where}.conds", inner))
        case "or":
            return OrCond(conds=_each(_get_list(d, "conds", where), f"{where}.conds", inner))
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
    """Parse a pipeline request body (server side); :class:`ProtocolError` if malformed.

    Well-formed bodies are read by msgspec (:mod:`._wire_requests`); anything it does not
    accept is read again here, which finds and names the problem."""
    fast = decode_pipeline_request_fast(body)
    if fast is not None:
        return fast
    return decode_pipeline_request_checked(body)


def decode_pipeline_request_checked(body: bytes | str) -> PipelineRequest:
    """:func:`decode_pipeline_request` by the dict-based decoder alone, the authority on
    what is valid (and the one that names what is not)."""
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
