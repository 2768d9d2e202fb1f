"""Reading and writing Hrana JSON: typed field access whose errors name the JSON path."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, TypeVar

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# int() would also accept "+5", " 5", "5_000" and non-ASCII digits; the wire format is
# plain ASCII decimal, and anything else is a sign of a confused peer.
__all__ = ["ProtocolError"]

_DECIMAL = re.compile(r"-?[0-9]+\Z")

_T = TypeVar("_T")


class ProtocolError(ValueError):
    """A Hrana message was malformed; the message names the JSON path and the problem."""


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


def _load_json(body: bytes | str, where: str) -> object:
    # msgspec, not json: several times faster, and strict where json is lenient
    # (NaN and Infinity are not JSON; neither is invalid UTF-8).
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        # json's parser recurses per level: a hostile body of thousands of brackets is
        # refused here instead of escaping as a server error.
        raise ProtocolError(f"{where}: nested too deeply") from None


def _dump_json(obj: object) -> bytes:
    """Compact UTF-8 JSON. Floats are finite by the time they get here (the value
    encoder refuses the others)."""
    return _ENCODER.encode(obj)


_ENCODER = msgspec.json.Encoder()


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
