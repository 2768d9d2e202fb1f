"""The cursor endpoint (``POST …/v3/cursor``): a batch whose results stream back as
newline-separated JSON entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from ._messages import Batch, Col, HranaError

from ._codec import _dec_batch, _dec_col, _dec_error, _dec_row, _enc_batch, _enc_col, _enc_error
from ._fields import (
    ProtocolError,
    _as_object,
    _dump_json,
    _each,
    _get,
    _get_int,
    _get_list,
    _get_opt_str,
    _get_str,
    _load_json,
    _opt_int,
    _rowid,
)
from ._values import Value, encode_value

# --- cursor -------------------------------------------------------------------------------


__all__ = [
    "CursorEntry",
    "CursorErrorEntry",
    "CursorHeader",
    "CursorRequest",
    "RowEntry",
    "StepBeginEntry",
    "StepEndEntry",
    "StepErrorEntry",
    "decode_cursor_entry",
    "decode_cursor_header",
    "decode_cursor_request",
    "encode_cursor_entry",
    "encode_cursor_header",
    "encode_cursor_request",
]


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
