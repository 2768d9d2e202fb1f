"""Rows as typed values: ``await db.fetch(sql, args, into=Model)``.

libsql-client's ``Row`` is a sequence of ``Value``; an app that wants ``program.name`` typed
as ``str`` declares a model (a dataclass, a NamedTuple or a TypedDict class) and gets a
``list[Model]``. Columns are matched to fields by name, checked once per result: a column
the model does not declare is a ``TypeError`` naming it (a typo or a forgotten ``AS`` would
otherwise go unnoticed), and so is a required field that no column fills. Values are passed
as the database returns them (``int``, ``float``, ``str``, ``bytes``, ``None``); nothing
converts them or checks them against the annotations.

What a model class needs (its fields, which of them are required, how to build one) is
worked out once per class and cached weakly, so classes made at run time can still go.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Callable

    from libsql_client import ResultSet

__all__ = ["Model", "RowModel"]

Model = TypeVar("Model")

# Under ``from __future__ import annotations`` Python 3.11 cannot see ``NotRequired[...]``
# or ``Required[...]`` in a TypedDict (the annotation is still a string), so its
# ``__required_keys__`` are wrong; the annotation's text says what was meant.
_REQUIREDNESS = re.compile(r"(?:\w+\.)*(NotRequired|Required)\[")
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Shape:
    """What is cached per model class; it must not refer to the class (the cache's key)."""

    fields: tuple[str, ...]
    required: frozenset[str]
    typed_dict: bool


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RowModel(Generic[Model]):
    """How to build ``model`` from rows: ``RowModel.of(Program).build(result_set)``."""

    model: type[Model]
    fields: tuple[str, ...]
    """The names a column may have, in declaration order."""
    required: frozenset[str]
    """The fields without a default: every result must have a column for each."""
    make: Callable[..., Model]
    """Called with one row's values as keyword arguments."""

    @classmethod
    def of(cls, model: type[Model]) -> RowModel[Model]:
        """The row model of a dataclass, NamedTuple or TypedDict class.

        Anything else is a ``TypeError``; call it before running the statement, so that a
        wrong ``into=`` fails before anything is written.
        """
        try:
            shape = _shapes.get(model)
        except TypeError:  # not weakly referenceable, so not a class either
            shape = None
        if shape is None:
            shape = _inspect(model)
            _shapes[model] = shape
        make: Callable[..., Model] = _typed_dict if shape.typed_dict else model
        return cls(model=model, fields=shape.fields, required=shape.required, make=make)

    def build(self, result: ResultSet) -> list[Model]:
        columns = result.columns
        self._check(columns)
        make = self.make
        return [make(**dict(zip(columns, row.astuple(), strict=True))) for row in result.rows]

    def _check(self, columns: tuple[str, ...]) -> None:
        name = self.model.__qualname__
        if len(set(columns)) != len(columns):
            twice = ", ".join(repr(c) for c in sorted({c for c in columns if columns.count(c) > 1}))
            raise TypeError(
                f"cannot build {name} from a result whose columns repeat a name ({twice}); "
                "give each column its own name with AS"
            )
        undeclared = [c for c in columns if c not in self.fields]
        if undeclared:
            raise TypeError(
                f"{name} has no field for the {_names('column', undeclared)} of this result; "
                f"select only the columns it declares ({', '.join(self.fields)}) "
                "or rename them with AS"
            )
        missing = [f for f in self.fields if f in self.required and f not in columns]
        if missing:
            raise TypeError(
                f"no column of this result fills the required {_names('field', missing)} of "
                f"{name} (columns: {', '.join(columns) or 'none'}); select a column of that "
                "name or give the field a default"
            )


_shapes: weakref.WeakKeyDictionary[type[Any], _Shape] = weakref.WeakKeyDictionary()


def _inspect(model: object) -> _Shape:
    if isinstance(model, type):
        if typing.is_typeddict(model):
            return _Shape(
                fields=tuple(model.__annotations__),
                required=_typeddict_required(model),
                typed_dict=True,
            )
        if dataclasses.is_dataclass(model) or (
            issubclass(model, tuple) and hasattr(model, "_fields")
        ):
            # The constructor's signature covers what the field lists miss: InitVar
            # pseudo-fields, init=False fields, default factories, NamedTuple defaults.
            parameters = [
                p for p in inspect.signature(model).parameters.values() if p.kind in _KEYWORD
            ]
            return _Shape(
                fields=tuple(p.name for p in parameters),
                required=frozenset(p.name for p in parameters if p.default is p.empty),
                typed_dict=False,
            )
    raise TypeError(f"into= takes a dataclass, NamedTuple or TypedDict class, not {model!r}")


def _typed_dict(**values: object) -> Any:
    return values  # a TypedDict is a plain dict at run time


def _typeddict_required(model: Any) -> frozenset[str]:
    required = set(model.__required_keys__)
    for key, annotation in model.__annotations__.items():
        text = getattr(annotation, "__forward_arg__", annotation)
        match = _REQUIREDNESS.match(text) if isinstance(text, str) else None
        if match is None:
            continue
        if match[1] == "NotRequired":
            required.discard(key)
        else:
            required.add(key)
    return frozenset(required)


def _names(kind: str, names: list[str]) -> str:
    quoted = ", ".join(repr(n) for n in names)
    return f"{kind} {quoted}" if len(names) == 1 else f"{kind}s {quoted}"
