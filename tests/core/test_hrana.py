"""The Hrana codec: value round trips, message round trips, malformed input, conditions."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from per_user_db.core._hrana import (
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
    CursorErrorEntry,
    CursorHeader,
    CursorRequest,
    DescribeParam,
    DescribeRequest,
    DescribeResponse,
    DescribeResult,
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
    ProtocolError,
    RowEntry,
    SequenceRequest,
    SequenceResponse,
    StepBeginEntry,
    StepEndEntry,
    StepErrorEntry,
    Stmt,
    StmtResult,
    StoreSqlRequest,
    StoreSqlResponse,
    StreamError,
    StreamOk,
    StreamRequest,
    Value,
    ValueNotRepresentable,
    decode_cursor_entry,
    decode_cursor_header,
    decode_cursor_request,
    decode_pipeline_request,
    decode_pipeline_response,
    decode_stmt_result,
    decode_value,
    encode_cursor_entry,
    encode_cursor_header,
    encode_cursor_request,
    encode_pipeline_request,
    encode_pipeline_response,
    encode_value,
    evaluate_condition,
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text()  # hypothesis text never contains lone surrogates
VALUES: st.SearchStrategy[Value] = st.one_of(st.none(), INT64, FINITE, TEXT, st.binary())


def _through_json(value: object) -> Value:
    return decode_value(json.loads(json.dumps(encode_value(value))))


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return type(a) is type(b) and a == b


# --- values --------------------------------------------------------------------------------


@given(INT64)
def test_integers_round_trip_as_decimal_strings(n: int) -> None:
    encoded = encode_value(n)
    assert encoded == {"type": "integer", "value": str(n)}
    assert _through_json(n) == n


@given(FINITE)
def test_finite_floats_round_trip_with_their_sign(x: float) -> None:
    back = _through_json(x)
    assert isinstance(back, float)
    assert _same(back, x)


def test_negative_zero_keeps_its_sign() -> None:
    back = _through_json(-0.0)
    assert isinstance(back, float)
    assert math.copysign(1.0, back) == -1.0


@given(TEXT)
def test_text_round_trips(s: str) -> None:
    assert _through_json(s) == s


@given(st.binary())
def test_blobs_round_trip_padded_and_unpadded(b: bytes) -> None:
    encoded = encode_value(b)
    assert _through_json(b) == b
    unpadded = {"type": "blob", "base64": str(encoded["base64"]).rstrip("=")}
    assert decode_value(unpadded) == b


def test_bytearray_and_memoryview_are_blobs() -> None:
    assert decode_value(encode_value(bytearray(b"\x00\x01"))) == b"\x00\x01"
    assert decode_value(encode_value(memoryview(b"ab"))) == b"ab"


def test_bool_is_an_integer_and_none_is_null() -> None:
    assert encode_value(True) == {"type": "integer", "value": "1"}
    assert encode_value(False) == {"type": "integer", "value": "0"}
    assert encode_value(None) == {"type": "null"}
    assert decode_value({"type": "null"}) is None


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_are_refused(n: int) -> None:
    with pytest.raises(ValueNotRepresentable, match="does not fit in SQLite's signed 64-bit"):
        encode_value(n)


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(x: float) -> None:
    with pytest.raises(ValueNotRepresentable, match="cannot travel in Hrana JSON"):
        encode_value(x)


def test_other_types_are_a_type_error_naming_the_type() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        encode_value(Decimal(1))


def test_float_null_from_turso_decodes_as_nan() -> None:
    value = decode_value({"type": "float", "value": None})
    assert isinstance(value, float)
    assert math.isnan(value)


def test_integer_as_json_number_is_tolerated() -> None:
    assert decode_value({"type": "integer", "value": 7}) == 7
    assert decode_value({"type": "float", "value": 2}) == 2.0


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "value: expected an object, got an array"),
        ({}, "value.type: required field is missing"),
        ({"type": "decimal"}, "unknown value type 'decimal'"),
        ({"type": "integer", "value": "1.5"}, "integer must be a decimal string"),
        ({"type": "integer", "value": "+1"}, "integer must be a decimal string"),
        ({"type": "integer", "value": "1_0"}, "integer must be a decimal string"),
        ({"type": "integer", "value": True}, "integer must be a decimal string, got a boolean"),
        ({"type": "integer", "value": str(2**63)}, "outside the 64-bit range"),
        ({"type": "float", "value": "1.5"}, "float must be a JSON number, got a string"),
        ({"type": "float"}, "float must be a JSON number, got nothing"),
        ({"type": "text", "value": 3}, "value.value: expected a string, got a number"),
        ({"type": "blob", "base64": "!!!"}, "value.base64: not valid base64"),
        ({"type": "blob"}, "value.base64: required field is missing"),
    ],
)
def test_malformed_values_say_what_is_wrong(obj: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace("+", r"\+")):
        decode_value(obj)


# --- messages ------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcxyz_", min_size=1, max_size=5).map(lambda s: ":" + s)


@st.composite
def stmts(draw: st.DrawFn) -> Stmt:
    values = st.lists(VALUES, max_size=3).map(tuple)
    use_id = draw(st.booleans())
    positional = draw(st.booleans())
    return Stmt(
        sql=None if use_id else draw(TEXT),
        sql_id=draw(st.integers(0, 1000)) if use_id else None,
        args=draw(values) if positional else (),
        named_args=()
        if positional
        else tuple(draw(st.lists(st.tuples(NAMES, VALUES), max_size=3))),
        want_rows=draw(st.booleans()),
    )


def conds(max_step: int) -> st.SearchStrategy[Cond]:
    leaves: st.SearchStrategy[Cond] = st.one_of(
        st.just(IsAutocommitCond()),
        *(
            [
                st.builds(OkCond, step=st.integers(0, max_step - 1)),
                st.builds(ErrorCond, step=st.integers(0, max_step - 1)),
            ]
            if max_step > 0
            else []
        ),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(NotCond, cond=inner),
            st.builds(AndCond, conds=st.lists(inner, max_size=3).map(tuple)),
            st.builds(OrCond, conds=st.lists(inner, max_size=3).map(tuple)),
        ),
        max_leaves=5,
    )


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    count = draw(st.integers(0, 4))
    steps = []
    for index in range(count):
        cond = draw(st.none() | conds(index))
        steps.append(BatchStep(stmt=draw(stmts()), condition=cond))
    return Batch(steps=tuple(steps))


REQUESTS = st.one_of(
    st.builds(ExecuteRequest, stmt=stmts()),
    st.builds(BatchRequest, batch=batches()),
    st.builds(SequenceRequest, sql=TEXT),
    st.builds(SequenceRequest, sql_id=st.integers(0, 99)),
    st.builds(DescribeRequest, sql=TEXT),
    st.builds(DescribeRequest, sql_id=st.integers(0, 99)),
    st.builds(StoreSqlRequest, sql_id=st.integers(0, 99), sql=TEXT),
    st.builds(CloseSqlRequest, sql_id=st.integers(0, 99)),
    st.just(GetAutocommitRequest()),
)
BATONS = st.none() | st.text(alphabet="abcdef0123456789-_", min_size=1, max_size=12)


@given(BATONS, st.lists(REQUESTS, max_size=4), st.booleans())
def test_pipeline_requests_round_trip(
    baton: str | None, requests: list[StreamRequest], close: bool
) -> None:
    sent: tuple[StreamRequest, ...] = (*requests, CloseRequest()) if close else tuple(requests)
    decoded = decode_pipeline_request(encode_pipeline_request(baton, sent))
    assert decoded == PipelineRequest(baton=baton, requests=sent)


@st.composite
def stmt_results(draw: st.DrawFn) -> StmtResult:
    width = draw(st.integers(0, 3))
    cols = tuple(
        Col(name=draw(st.none() | TEXT), decltype=draw(st.none() | TEXT)) for _ in range(width)
    )
    rows = draw(st.lists(st.tuples(*([VALUES] * width)), max_size=3))
    return StmtResult(
        cols=cols,
        rows=tuple(rows),
        affected_row_count=draw(st.integers(0, 10**6)),
        last_insert_rowid=draw(st.none() | INT64),
        rows_read=draw(st.integers(0, 10**6)),
        rows_written=draw(st.integers(0, 10**6)),
        query_duration_ms=draw(st.floats(0, 1e6)),
    )


ERRORS = st.builds(HranaError, message=TEXT, code=st.none() | st.sampled_from(["SQLITE_BUSY"]))


@st.composite
def batch_results(draw: st.DrawFn) -> BatchResult:
    outcomes = draw(st.lists(st.sampled_from(["ok", "error", "skipped"]), max_size=4))
    return BatchResult(
        step_results=tuple(draw(stmt_results()) if o == "ok" else None for o in outcomes),
        step_errors=tuple(draw(ERRORS) if o == "error" else None for o in outcomes),
    )


RESPONSES = st.one_of(
    st.builds(ExecuteResponse, result=stmt_results()),
    st.builds(BatchResponse, result=batch_results()),
    st.just(SequenceResponse()),
    st.builds(
        DescribeResponse,
        result=st.builds(
            DescribeResult,
            params=st.lists(st.builds(DescribeParam, name=st.none() | NAMES)).map(tuple),
            cols=st.lists(st.builds(Col, name=TEXT, decltype=st.none() | TEXT)).map(tuple),
            is_explain=st.booleans(),
            is_readonly=st.booleans(),
        ),
    ),
    st.just(StoreSqlResponse()),
    st.just(CloseSqlResponse()),
    st.just(CloseResponse()),
    st.builds(GetAutocommitResponse, is_autocommit=st.booleans()),
)
STREAM_RESULTS = st.one_of(
    st.builds(StreamOk, response=RESPONSES), st.builds(StreamError, error=ERRORS)
)


@given(
    BATONS, st.none() | st.just("http://127.0.0.1:1/db/x/"), st.lists(STREAM_RESULTS, max_size=4)
)
def test_pipeline_responses_round_trip(
    baton: str | None, base_url: str | None, results: list[StreamOk]
) -> None:
    response = PipelineResponse(baton=baton, base_url=base_url, results=tuple(results))
    assert decode_pipeline_response(encode_pipeline_response(response)) == response


@given(BATONS, batches())
def test_cursor_requests_round_trip(baton: str | None, batch: Batch) -> None:
    decoded = decode_cursor_request(encode_cursor_request(baton, batch))
    assert decoded == CursorRequest(baton=baton, batch=batch)


CURSOR_ENTRIES = st.one_of(
    st.builds(
        StepBeginEntry, step=st.integers(0, 9), cols=st.lists(st.builds(Col, name=TEXT)).map(tuple)
    ),
    st.builds(RowEntry, row=st.lists(VALUES, max_size=3).map(tuple)),
    st.builds(
        StepEndEntry,
        affected_row_count=st.integers(0, 99),
        last_insert_rowid=st.none() | INT64,
        rows_read=st.integers(0, 99),
        rows_written=st.integers(0, 99),
    ),
    st.builds(StepErrorEntry, step=st.integers(0, 9), error=ERRORS),
    st.builds(CursorErrorEntry, error=ERRORS),
)


@given(CURSOR_ENTRIES)
def test_cursor_entries_round_trip_one_line_each(entry: StepBeginEntry) -> None:
    line = encode_cursor_entry(entry)
    assert line.endswith(b"\n")
    assert b"\n" not in line[:-1]
    assert decode_cursor_entry(line) == entry


def test_cursor_header_round_trips() -> None:
    header = CursorHeader(baton="b1", base_url=None)
    assert decode_cursor_header(encode_cursor_header(header)) == header


def test_step_end_accepts_a_numeric_rowid() -> None:
    entry = decode_cursor_entry(b'{"type":"step_end","affected_row_count":1,"last_insert_rowid":5}')
    assert entry == StepEndEntry(affected_row_count=1, last_insert_rowid=5)


def test_encoded_request_matches_the_wire_format() -> None:
    body = encode_pipeline_request(
        None,
        [
            ExecuteRequest(stmt=Stmt(sql="SELECT ?", args=(1,))),
            ExecuteRequest(stmt=Stmt(sql="SELECT :a", named_args=((":a", b"\x01"),))),
            CloseRequest(),
        ],
    )
    assert json.loads(body) == {
        "baton": None,
        "requests": [
            {
                "type": "execute",
                "stmt": {
                    "sql": "SELECT ?",
                    "args": [{"type": "integer", "value": "1"}],
                    "named_args": [],
                    "want_rows": True,
                },
            },
            {
                "type": "execute",
                "stmt": {
                    "sql": "SELECT :a",
                    "args": [],
                    "named_args": [{"name": ":a", "value": {"type": "blob", "base64": "AQ=="}}],
                    "want_rows": True,
                },
            },
            {"type": "close"},
        ],
    }


# --- malformed messages --------------------------------------------------------------------


def _req(*requests: object, baton: object = None) -> bytes:
    return json.dumps({"baton": baton, "requests": list(requests)}).encode()


_EXEC = {"type": "execute", "stmt": {"sql": "SELECT 1"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: not valid JSON"),
        (b'{"baton": null, "requests": [NaN]}', "not valid JSON"),
        (b"[]", "body: expected an object, got an array"),
        (b'{"baton": null}', "body.requests: required field is missing"),
        (_req(baton=5), "body.baton: expected a string or null, got a number"),
        (
            _req({"type": "frobnicate"}),
            r"body.requests\[0\].type: unknown request type 'frobnicate'",
        ),
        (_req({"type": "execute"}), r"body.requests\[0\].stmt: required field is missing"),
        (
            _req({"type": "execute", "stmt": {"sql": "x", "sql_id": 1}}),
            "exactly one of sql and sql_id",
        ),
        (_req({"type": "execute", "stmt": {}}), "exactly one of sql and sql_id"),
        (
            _req(
                {
                    "type": "execute",
                    "stmt": {
                        "sql": "x",
                        "args": [{"type": "null"}],
                        "named_args": [{"name": ":a", "value": {"type": "null"}}],
                    },
                }
            ),
            "both args and named_args are non-empty",
        ),
        (
            _req(
                {
                    "type": "execute",
                    "stmt": {"sql": "x", "args": [{"type": "integer", "value": "x"}]},
                }
            ),
            r"body.requests\[0\].stmt.args\[0\].value: integer must be a decimal string",
        ),
        (
            _req({"type": "execute", "stmt": {"sql": "x", "want_rows": "yes"}}),
            "want_rows: expected true or false",
        ),
        (
            _req(
                {
                    "type": "batch",
                    "batch": {
                        "steps": [{"stmt": {"sql": "x"}, "condition": {"type": "ok", "step": 0}}]
                    },
                }
            ),
            "condition of step 0 refers to step 0; a condition may only refer to earlier steps",
        ),
        (
            _req(
                {
                    "type": "batch",
                    "batch": {
                        "steps": [
                            {"stmt": {"sql": "x"}},
                            {
                                "stmt": {"sql": "y"},
                                "condition": {"type": "not", "cond": {"type": "error", "step": 3}},
                            },
                        ]
                    },
                }
            ),
            "condition of step 1 refers to step 3",
        ),
        (
            _req(
                {
                    "type": "batch",
                    "batch": {"steps": [{"stmt": {"sql": "x"}, "condition": {"type": "maybe"}}]},
                }
            ),
            "unknown condition type 'maybe'",
        ),
        (_req({"type": "close"}, _EXEC), "close must be the last request"),
        (
            _req({"type": "store_sql", "sql_id": "1", "sql": "x"}),
            "sql_id: expected an integer, got a string",
        ),
    ],
)
def test_malformed_pipeline_requests_raise_protocol_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_pipeline_request(body)


_OK_EXEC = {
    "type": "ok",
    "response": {
        "type": "execute",
        "result": {"cols": [], "rows": [], "affected_row_count": 0, "last_insert_rowid": None},
    },
}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body: not valid JSON"),
        (b'{"baton": null, "base_url": null}', "body.results: required field is missing"),
        (
            json.dumps({"baton": None, "results": [{"type": "maybe"}]}).encode(),
            r"body.results\[0\].type: .*'maybe'",
        ),
        (
            json.dumps({"baton": None, "results": [{"type": "error", "error": {}}]}).encode(),
            r"body.results\[0\].error.message: required field is missing",
        ),
        (
            json.dumps(
                {
                    "baton": None,
                    "results": [
                        {
                            "type": "ok",
                            "response": {
                                "type": "execute",
                                "result": {
                                    "cols": [{"name": "a"}],
                                    "rows": [[]],
                                    "affected_row_count": 0,
                                },
                            },
                        }
                    ],
                }
            ).encode(),
            "has 0 values but there are 1 columns",
        ),
        (
            json.dumps(
                {
                    "baton": None,
                    "results": [
                        {
                            "type": "ok",
                            "response": {
                                "type": "batch",
                                "result": {"step_results": [None], "step_errors": []},
                            },
                        }
                    ],
                }
            ).encode(),
            "1 step_results but 0 step_errors",
        ),
    ],
)
def test_malformed_pipeline_responses_raise_protocol_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_pipeline_response(body)


def test_a_response_must_echo_its_request_type() -> None:
    body = json.dumps({"baton": None, "base_url": None, "results": [_OK_EXEC]}).encode()
    with pytest.raises(ProtocolError, match="'execute' does not echo the request type 'close'"):
        decode_pipeline_response(body, requests=[CloseRequest()])
    with pytest.raises(ProtocolError, match="1 results for 2 requests"):
        decode_pipeline_response(body, requests=[CloseRequest(), CloseRequest()])
    decoded = decode_pipeline_response(body, requests=[ExecuteRequest(stmt=Stmt(sql="x"))])
    assert len(decoded.results) == 1


def test_constructors_reject_misuse() -> None:
    with pytest.raises(ValueError, match="exactly one of sql and sql_id"):
        Stmt()
    with pytest.raises(ValueError, match="not both"):
        Stmt(sql="x", args=(1,), named_args=((":a", 1),))
    with pytest.raises(ValueError, match="only refer to earlier steps"):
        Batch(steps=(BatchStep(stmt=Stmt(sql="x"), condition=OkCond(step=0)),))


# --- conditions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "ok", "error"),
    [(True, True, False), (False, False, True), (None, False, True)],
)
def test_ok_and_error_truth_table(outcome: bool | None, ok: bool, error: bool) -> None:
    assert evaluate_condition(OkCond(step=0), [outcome], is_autocommit=True) is ok
    # "error" is "not ok", so a skipped step counts as an error.
    assert evaluate_condition(ErrorCond(step=0), [outcome], is_autocommit=True) is error


def test_compound_conditions() -> None:
    outcomes = [True, False, None]
    t, f = OkCond(step=0), OkCond(step=1)
    assert evaluate_condition(NotCond(cond=f), outcomes, is_autocommit=False)
    assert evaluate_condition(AndCond(conds=(t, ErrorCond(step=2))), outcomes, is_autocommit=False)
    assert not evaluate_condition(AndCond(conds=(t, f)), outcomes, is_autocommit=False)
    assert evaluate_condition(OrCond(conds=(f, t)), outcomes, is_autocommit=False)
    assert evaluate_condition(AndCond(conds=()), outcomes, is_autocommit=False)
    assert not evaluate_condition(OrCond(conds=()), outcomes, is_autocommit=False)
    assert evaluate_condition(IsAutocommitCond(), outcomes, is_autocommit=True)
    assert not evaluate_condition(IsAutocommitCond(), outcomes, is_autocommit=False)


def test_condition_on_a_later_step_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=r"refers to step 1, but only steps 0\.\.0 ran"):
        evaluate_condition(OkCond(step=1), [True], is_autocommit=True)


@given(st.lists(st.none() | st.booleans(), min_size=1, max_size=5), st.data())
def test_not_ok_equals_error(outcomes: list[bool | None], data: st.DataObject) -> None:
    step = data.draw(st.integers(0, len(outcomes) - 1))
    not_ok = evaluate_condition(NotCond(cond=OkCond(step=step)), outcomes, is_autocommit=True)
    assert not_ok == evaluate_condition(ErrorCond(step=step), outcomes, is_autocommit=True)


@given(stmt_results())
def test_both_result_decoders_agree(result: StmtResult) -> None:
    # The client decodes pipelines with msgspec (_wire); the WebSocket transport and the
    # cursor endpoint decode single results with the dict-based codec. Same JSON, same value.
    response = PipelineResponse(
        baton=None, base_url=None, results=(StreamOk(response=ExecuteResponse(result=result)),)
    )
    body = encode_pipeline_response(response)
    (wire,) = decode_pipeline_response(body).results
    assert isinstance(wire, StreamOk)
    assert isinstance(wire.response, ExecuteResponse)
    raw = json.loads(body)["results"][0]["response"]["result"]
    assert decode_stmt_result(raw) == wire.response.result == result


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ({"type": "integer", "value": "-9223372036854775808"}, -(2**63)),
        ({"type": "integer", "value": 7}, 7),
        ({"type": "float", "value": None}, "nan"),
        ({"type": "blob", "base64": "AAE"}, b"\x00\x01"),  # Turso leaves out the padding
        ({"type": "blob", "base64": "AAE="}, b"\x00\x01"),
        ({"type": "null"}, None),
    ],
)
def test_the_pipeline_decoder_reads_every_value_form(value: object, decoded: object) -> None:
    body = json.dumps({"results": [_ok_rows([[value]])]}).encode()
    (result,) = decode_pipeline_response(body).results
    assert isinstance(result, StreamOk)
    assert isinstance(result.response, ExecuteResponse)
    (got,) = result.response.result.rows[0]
    if decoded == "nan":
        assert isinstance(got, float)
        assert math.isnan(got)
    else:
        assert got == decoded
        assert type(got) is type(decoded)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"type": "integer", "value": "9223372036854775808"}, r"rows\[0\]\[0\].value"),
        ({"type": "integer", "value": "1.5"}, r"rows\[0\]\[0\].value"),
        ({"type": "integer", "value": " 5"}, r"rows\[0\]\[0\].value"),
        ({"type": "integer", "value": True}, r"rows\[0\]\[0\].value"),
        ({"type": "blob", "base64": "!!"}, "not valid base64"),
        ({"type": "text"}, r"rows\[0\]\[0\].value: required field is missing"),
        ({"type": "date", "value": "x"}, r"rows\[0\]\[0\]"),
    ],
)
def test_the_pipeline_decoder_names_the_bad_value(value: object, message: str) -> None:
    body = json.dumps({"results": [_ok_rows([[value]])]}).encode()
    with pytest.raises(ProtocolError, match=message):
        decode_pipeline_response(body)


def _ok_rows(rows: list[list[object]]) -> dict[str, object]:
    cols = [{"name": f"c{i}"} for i in range(len(rows[0]))]
    result = {"cols": cols, "rows": rows, "affected_row_count": 0, "last_insert_rowid": None}
    return {"type": "ok", "response": {"type": "execute", "result": result}}
