from __future__ import annotations

from typing import assert_never

import pytest

from per_user_db import Err, Ok, Result, UnwrapError


def describe(result: Result[int, str]) -> str:
    match result:
        case Ok(value):
            return f"ok {value}"
        case Err(error):
            return f"err {error}"
        case _ as unreachable:
            assert_never(unreachable)


def test_match_destructures_both_variants() -> None:
    assert describe(Ok(3)) == "ok 3"
    assert describe(Err("boom")) == "err boom"


def test_ok_combinators() -> None:
    ok: Result[int, str] = Ok(2)
    assert ok.is_ok()
    assert not ok.is_err()
    assert ok.unwrap() == 2
    assert ok.unwrap_or(9) == 2
    assert ok.map(lambda v: v * 10) == Ok(20)
    assert ok.map_err(lambda e: f"never {e}") == Ok(2)


def test_err_combinators() -> None:
    err: Result[int, str] = Err("bad")
    assert not err.is_ok()
    assert err.is_err()
    assert err.unwrap_or(9) == 9
    assert err.map(lambda v: v * 10) == Err("bad")
    assert err.map_err(lambda e: e.upper()) == Err("BAD")


def test_unwrap_err_raises_one_type_carrying_the_error() -> None:
    class Problem:
        def __str__(self) -> str:
            return "the problem"

    problem = Problem()
    with pytest.raises(UnwrapError, match="the problem") as info:
        Err(problem).unwrap()
    assert info.value.error is problem


def test_values_are_frozen_and_slotted() -> None:
    ok = Ok(1)
    with pytest.raises(AttributeError):
        ok.value = 2  # type: ignore[misc]
    assert not hasattr(ok, "__dict__")
    assert Ok(1) == Ok(1)
    assert Ok(1) != Err(1)  # type: ignore[comparison-overlap]
    assert hash(Ok(1)) == hash(Ok(1))
