"""``Ok`` / ``Err``: the result values every fallible operation of the library returns.

Expected failures (an API that is down, a name that is taken, a migration that drifted)
are values, not exceptions, so that a caller sees them in the signature and handles them
with ``match``::

    match await create_database(user_id):
        case Ok(credentials):
            ...
        case Err(error):
            ...

Callers who prefer exceptions call :meth:`Ok.unwrap` / :meth:`Err.unwrap`; an ``Err``
raises :class:`UnwrapError`, which carries the error value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeAlias, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Err", "Ok", "Result", "UnwrapError"]

T = TypeVar("T", covariant=True)
E = TypeVar("E", covariant=True)
U = TypeVar("U")
F = TypeVar("F")
D = TypeVar("D")


class UnwrapError(Exception):
    """Raised by :meth:`Err.unwrap`; ``error`` is the value the ``Err`` held.

    The message is ``str(error)``: error values of this library never contain secrets,
    so the message is safe to log.
    """

    def __init__(self, error: object) -> None:
        super().__init__(str(error))
        self.error = error


@final
@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """A success holding ``value``."""

    value: T

    def is_ok(self) -> Literal[True]:
        return True

    def is_err(self) -> Literal[False]:
        return False

    def unwrap(self) -> T:
        return self.value

    def unwrap_or(self, default: object) -> T:
        return self.value

    def map(self, fn: Callable[[T], U]) -> Ok[U]:
        return Ok(fn(self.value))

    # The other variant's callback is typed Any so that, on a ``Result`` union, a lambda
    # is checked against the real value type only.
    def map_err(self, fn: Callable[[Any], object]) -> Ok[T]:
        return self


@final
@dataclass(frozen=True, slots=True)
class Err(Generic[E]):
    """A failure holding ``error``, a typed error value."""

    error: E

    def is_ok(self) -> Literal[False]:
        return False

    def is_err(self) -> Literal[True]:
        return True

    def unwrap(self) -> NoReturn:
        raise UnwrapError(self.error)

    def unwrap_or(self, default: D) -> D:
        return default

    def map(self, fn: Callable[[Any], object]) -> Err[E]:
        return self

    def map_err(self, fn: Callable[[E], F]) -> Err[F]:
        return Err(fn(self.error))


Result: TypeAlias = Ok[T] | Err[E]
