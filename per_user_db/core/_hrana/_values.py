"""SQL values as they travel in Hrana JSON: ``{"type": "integer", "value": "1"}`` and friends."""

from __future__ import annotations

import base64
import binascii
import math
from typing import TypeAlias

from ._fields import _DECIMAL, _MISSING, ProtocolError, _as_object, _describe, _get_str

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "Value",
    "ValueNotRepresentable",
    "decode_value",
    "encode_value",
]

Value: TypeAlias = int | float | str | bytes | None
"""A SQLite value as it travels: NULL, INTEGER, REAL, TEXT or BLOB."""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


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
            return decode_base64(_get_str(d, "base64", where), f"{where}.base64")
        case _:
            raise ProtocolError(
                f"{where}.type: unknown value type {kind!r} "
                "(expected null, integer, float, text or blob)"
            )


def decode_base64(text: str, where: str) -> bytes:
    stripped = text.rstrip("=")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"{where}: not valid base64 ({exc})") from None
