"""The Hrana messages as frozen values: statements, batch conditions, stream requests and
responses, pipeline bodies. No JSON here; :mod:`._codec` turns them into bytes and back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._values import Value
from ._fields import ProtocolError

# --- statements, conditions and batches ---------------------------------------------------


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
    "SequenceRequest",
    "SequenceResponse",
    "Stmt",
    "StmtResult",
    "StoreSqlRequest",
    "StoreSqlResponse",
    "StreamError",
    "StreamOk",
    "StreamRequest",
    "StreamResponse",
    "StreamResult",
    "condition_problem",
    "evaluate_condition",
    "request_type",
    "response_type",
]


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
