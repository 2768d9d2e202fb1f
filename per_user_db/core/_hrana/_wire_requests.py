"""The server's pipeline-request decoder for well-formed requests, parsed by msgspec.

Every request the local server answers starts here, and the dict-based decoder in
:mod:`._codec` spent most of a ``SELECT 1`` request's decoding walking dicts and
building JSON paths for error messages nobody would see. msgspec parses the bytes
straight into typed structs, strictly (no bool for an int, no number for a string),
and one pass turns them into the codec's messages.

It only ever *accepts*: anything it does not take (malformed JSON, a wrong type, a
rule it checks after parsing) makes :func:`decode_pipeline_request_fast` return None,
and the dict-based decoder reads the body again to find and name the problem. So the
dict-based decoder stays the one authority on what is valid, and property tests prove
that whatever this module accepts, that decoder accepts, with the same result.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import msgspec

from ._fields import _DECIMAL, ProtocolError
from ._messages import (
    AndCond,
    Batch,
    BatchRequest,
    BatchStep,
    CloseRequest,
    CloseSqlRequest,
    DescribeRequest,
    ErrorCond,
    ExecuteRequest,
    GetAutocommitRequest,
    IsAutocommitCond,
    NotCond,
    OkCond,
    OrCond,
    PipelineRequest,
    SequenceRequest,
    Stmt,
    StoreSqlRequest,
    condition_problem,
)
from ._values import INT64_MAX, INT64_MIN, decode_base64

if TYPE_CHECKING:
    from ._messages import Cond, StreamRequest
    from ._values import Value

__all__ = ["decode_pipeline_request_fast"]


class _Reject(Exception):
    """Parsed, but not something this module vouches for: let the dict decoder look."""


# --- values -------------------------------------------------------------------------------


class _Null(msgspec.Struct, tag="null"):
    pass


class _Integer(msgspec.Struct, tag="integer"):
    value: str | int


class _Float(msgspec.Struct, tag="float"):
    value: float | None


class _Text(msgspec.Struct, tag="text"):
    value: str


class _Blob(msgspec.Struct, tag="blob"):
    base64: str


_Value = _Null | _Integer | _Float | _Text | _Blob


def _value(wire: _Value) -> Value:
    match wire:
        case _Null():
            return None
        case _Integer(value=raw):
            if isinstance(raw, str):
                if not _DECIMAL.match(raw):
                    raise _Reject
                number = int(raw)
            else:
                number = raw
            if not INT64_MIN <= number <= INT64_MAX:
                raise _Reject
            return number
        case _Float(value=raw):
            return math.nan if raw is None else float(raw)
        case _Text(value=text):
            return text
        case _Blob(base64=text):
            try:
                return decode_base64(text, "base64")
            except ProtocolError:
                raise _Reject from None


# --- statements and conditions ------------------------------------------------------------


class _NamedArg(msgspec.Struct):
    name: str
    value: _Value


class _Stmt(msgspec.Struct):
    sql: str | None = None
    sql_id: int | None = None
    args: list[_Value] | None = None
    named_args: list[_NamedArg] | None = None
    want_rows: bool = True


class _Ok(msgspec.Struct, tag="ok"):
    step: int


class _Error(msgspec.Struct, tag="error"):
    step: int


class _Not(msgspec.Struct, tag="not"):
    cond: _Cond


class _And(msgspec.Struct, tag="and"):
    conds: list[_Cond]


class _Or(msgspec.Struct, tag="or"):
    conds: list[_Cond]


class _IsAutocommit(msgspec.Struct, tag="is_autocommit"):
    pass


_Cond = _Ok | _Error | _Not | _And | _Or | _IsAutocommit

_MAX_DEPTH = 32  # the dict decoder's MAX_CONDITION_DEPTH


def _stmt(wire: _Stmt) -> Stmt:
    if (wire.sql is None) == (wire.sql_id is None):
        raise _Reject
    args = tuple(_value(v) for v in wire.args) if wire.args else ()
    named = tuple((a.name, _value(a.value)) for a in wire.named_args) if wire.named_args else ()
    if args and named:
        raise _Reject
    return Stmt(
        sql=wire.sql, sql_id=wire.sql_id, args=args, named_args=named, want_rows=wire.want_rows
    )


def _cond(wire: _Cond, depth: int = 1) -> Cond:
    if depth > _MAX_DEPTH:
        raise _Reject
    match wire:
        case _Ok(step=step):
            return OkCond(step=step)
        case _Error(step=step):
            return ErrorCond(step=step)
        case _Not(cond=inner):
            return NotCond(cond=_cond(inner, depth + 1))
        case _And(conds=conds):
            return AndCond(conds=tuple(_cond(c, depth + 1) for c in conds))
        case _Or(conds=conds):
            return OrCond(conds=tuple(_cond(c, depth + 1) for c in conds))
        case _IsAutocommit():
            return IsAutocommitCond()


# --- requests -----------------------------------------------------------------------------


class _Step(msgspec.Struct):
    stmt: _Stmt
    condition: _Cond | None = None


class _Batch(msgspec.Struct):
    steps: list[_Step]


class _Execute(msgspec.Struct, tag="execute"):
    stmt: _Stmt


class _BatchRequest(msgspec.Struct, tag="batch"):
    batch: _Batch


class _Sequence(msgspec.Struct, tag="sequence"):
    sql: str | None = None
    sql_id: int | None = None


class _Describe(msgspec.Struct, tag="describe"):
    sql: str | None = None
    sql_id: int | None = None


class _StoreSql(msgspec.Struct, tag="store_sql"):
    sql_id: int
    sql: str


class _CloseSql(msgspec.Struct, tag="close_sql"):
    sql_id: int


class _Close(msgspec.Struct, tag="close"):
    pass


class _GetAutocommit(msgspec.Struct, tag="get_autocommit"):
    pass


_Request = (
    _Execute
    | _BatchRequest
    | _Sequence
    | _Describe
    | _StoreSql
    | _CloseSql
    | _Close
    | _GetAutocommit
)


class _Pipeline(msgspec.Struct):
    requests: list[_Request]
    baton: str | None = None


def _batch(wire: _Batch) -> Batch:
    steps: list[BatchStep] = []
    for index, step in enumerate(wire.steps):
        condition = None if step.condition is None else _cond(step.condition)
        if condition is not None and condition_problem(condition, index) is not None:
            raise _Reject
        steps.append(BatchStep(stmt=_stmt(step.stmt), condition=condition))
    return Batch(steps=tuple(steps))


def _sql_or_id(sql: str | None, sql_id: int | None) -> None:
    if (sql is None) == (sql_id is None):
        raise _Reject


def _request(wire: _Request) -> StreamRequest:
    match wire:
        case _Execute(stmt=stmt):
            return ExecuteRequest(stmt=_stmt(stmt))
        case _BatchRequest(batch=batch):
            return BatchRequest(batch=_batch(batch))
        case _Sequence(sql=sql, sql_id=sql_id):
            _sql_or_id(sql, sql_id)
            return SequenceRequest(sql=sql, sql_id=sql_id)
        case _Describe(sql=sql, sql_id=sql_id):
            _sql_or_id(sql, sql_id)
            return DescribeRequest(sql=sql, sql_id=sql_id)
        case _StoreSql(sql_id=sql_id, sql=sql):
            return StoreSqlRequest(sql_id=sql_id, sql=sql)
        case _CloseSql(sql_id=sql_id):
            return CloseSqlRequest(sql_id=sql_id)
        case _Close():
            return _CLOSE
        case _GetAutocommit():
            return _GET_AUTOCOMMIT


_CLOSE = CloseRequest()
_GET_AUTOCOMMIT = GetAutocommitRequest()
_DECODER = msgspec.json.Decoder(_Pipeline, strict=True)


def decode_pipeline_request_fast(body: bytes | str) -> PipelineRequest | None:
    """The pipeline request in ``body``, or None if the dict decoder must judge it."""
    try:
        wire = _DECODER.decode(body)
        requests = tuple(_request(r) for r in wire.requests)
    except (msgspec.DecodeError, _Reject, RecursionError):
        return None
    if any(isinstance(r, CloseRequest) for r in requests[:-1]):
        return None  # close must come last
    return PipelineRequest(baton=wire.baton, requests=requests)
