"""Typed rows: ``fetch(sql, args, into=Model)`` over a real SQLite file and over HTTP to the
local protocol server, into dataclasses, NamedTuples and TypedDicts."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, NotRequired, Required, TypedDict

import pytest

from per_user_db import Database, Ok, open_database
from per_user_db._rows import RowModel, _shapes

from .conftest import LocalServer


@dataclass(frozen=True, kw_only=True)
class Program:
    id: int
    name: str
    notes: str | None = None


class ProgramTuple(NamedTuple):
    id: int
    name: str
    notes: str | None = None


class ProgramDict(TypedDict):
    id: int
    name: str
    notes: NotRequired[str | None]


class ProgramPatch(TypedDict, total=False):
    id: Required[int]
    name: str


@pytest.fixture(params=["file", "http"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, server: LocalServer
) -> AsyncIterator[Database]:
    if request.param == "file":
        url = f"file:{tmp_path / 'user.db'}"
    else:
        url = await server.database("user")
    opened = await open_database(url)
    assert isinstance(opened, Ok), opened
    async with opened.value as database:
        await database.batch(
            [
                "CREATE TABLE programs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, notes TEXT)",
                "INSERT INTO programs VALUES (1, 'Strength', NULL), (2, 'Cardio', 'easy')",
            ]
        )
        yield database


async def test_rows_become_dataclasses_by_column_name(db: Database) -> None:
    # Column order differs from field order: matching is by name, not position.
    programs = await db.fetch(
        "SELECT notes, name, id FROM programs WHERE id >= ? ORDER BY id", [1], into=Program
    )
    assert programs == [
        Program(id=1, name="Strength", notes=None),
        Program(id=2, name="Cardio", notes="easy"),
    ]


async def test_rows_become_named_tuples_and_defaults_fill_unselected_fields(
    db: Database,
) -> None:
    programs = await db.fetch("SELECT name, id FROM programs ORDER BY id", into=ProgramTuple)
    assert programs == [ProgramTuple(1, "Strength"), ProgramTuple(2, "Cardio")]
    assert [type(p) for p in programs] == [ProgramTuple, ProgramTuple]


async def test_rows_become_typed_dicts_without_their_optional_keys(db: Database) -> None:
    everything = await db.fetch(
        "SELECT * FROM programs WHERE id = :id", {"id": 2}, into=ProgramDict
    )
    assert everything == [{"id": 2, "name": "Cardio", "notes": "easy"}]
    # NotRequired under `from __future__ import annotations`, which Python 3.11's
    # __required_keys__ gets wrong
    without_notes = await db.fetch("SELECT id, name FROM programs WHERE id = 1", into=ProgramDict)
    assert without_notes == [{"id": 1, "name": "Strength"}]
    assert await db.fetch("SELECT id FROM programs WHERE id = 1", into=ProgramPatch) == [{"id": 1}]


async def test_an_empty_result_is_an_empty_list(db: Database) -> None:
    assert await db.fetch("SELECT id, name FROM programs WHERE id = 99", into=Program) == []


async def test_a_transaction_fetches_its_own_uncommitted_rows(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO programs (id, name) VALUES (3, 'Mobility')")
        inside = await tx.fetch("SELECT id, name FROM programs WHERE id = 3", into=Program)
        assert inside == [Program(id=3, name="Mobility")]
    # rolled back: never committed
    assert await db.fetch("SELECT id, name FROM programs WHERE id = 3", into=Program) == []


async def test_a_column_the_model_does_not_declare_is_named(db: Database) -> None:
    with pytest.raises(TypeError) as info:
        await db.fetch("SELECT id, name, 1 AS extra, 2 AS more FROM programs", into=Program)
    assert str(info.value) == (
        "Program has no field for the columns 'extra', 'more' of this result; select only the "
        "columns it declares (id, name, notes) or rename them with AS"
    )
    # Checked from the columns, not the rows: an empty result fails the same way.
    with pytest.raises(TypeError) as empty:
        await db.fetch("SELECT id, name, 1 AS extra FROM programs WHERE 0", into=ProgramTuple)
    assert str(empty.value) == (
        "ProgramTuple has no field for the column 'extra' of this result; select only the "
        "columns it declares (id, name, notes) or rename them with AS"
    )


async def test_a_required_field_no_column_fills_is_named(db: Database) -> None:
    with pytest.raises(TypeError) as info:
        await db.fetch("SELECT id FROM programs", into=Program)
    assert str(info.value) == (
        "no column of this result fills the required field 'name' of Program (columns: id); "
        "select a column of that name or give the field a default"
    )
    with pytest.raises(TypeError) as typed_dict:
        await db.fetch("SELECT notes FROM programs", into=ProgramDict)
    assert str(typed_dict.value) == (
        "no column of this result fills the required fields 'id', 'name' of ProgramDict "
        "(columns: notes); select a column of that name or give the field a default"
    )


async def test_a_repeated_column_name_is_refused(db: Database) -> None:
    with pytest.raises(TypeError) as info:
        await db.fetch("SELECT p.id, q.id, p.name FROM programs p, programs q", into=Program)
    assert str(info.value) == (
        "cannot build Program from a result whose columns repeat a name ('id'); "
        "give each column its own name with AS"
    )


@pytest.mark.parametrize("into", [int, dict, object(), Program(id=1, name="an instance")])
async def test_a_model_of_another_kind_fails_before_the_statement_runs(
    db: Database, into: type[object]
) -> None:
    with pytest.raises(TypeError) as info:
        await db.fetch("INSERT INTO programs (id, name) VALUES (9, 'x') RETURNING id", into=into)
    assert str(info.value) == (
        f"into= takes a dataclass, NamedTuple or TypedDict class, not {into!r}"
    )
    assert (await db.execute("SELECT count(*) FROM programs WHERE id = 9"))[0][0] == 0


def test_dataclass_fields_are_what_its_constructor_takes() -> None:
    @dataclass(kw_only=True)
    class Set:
        reps: int
        scale: dataclasses.InitVar[float]
        tags: list[str] = dataclasses.field(default_factory=list)
        volume: float = dataclasses.field(init=False, default=0.0)

        def __post_init__(self, scale: float) -> None:
            self.volume = self.reps * scale

    model = RowModel.of(Set)
    assert model.fields == ("reps", "scale", "tags")
    assert model.required == frozenset({"reps", "scale"})


def test_models_are_cached_per_class_without_keeping_it_alive() -> None:
    assert RowModel.of(Program) == RowModel.of(Program)

    @dataclass
    class Temporary:
        id: int

    RowModel.of(Temporary)
    assert Temporary in _shapes
    gone = weakref.ref(Temporary)
    del Temporary
    gc.collect()
    assert gone() is None
