"""What ``apply_migrations`` promises, pinned one behaviour at a time (issue #15).

Against a real SQLite file and the local HTTP server (``target`` from ``test_migrate``).
:class:`Wire` stands between ``apply_migrations`` and the database's real transport: it
records every pipeline sent and lets a test act at a chosen round trip, by taking a lock
or changing the version table from a second SQLite connection (SQLite itself then answers
busy, or the guard fails), or by answering in the database's place for the answers a real
database will not give on demand (``SQLITE_LOCKED``, a bare "database is locked").
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from per_user_db import (
    Database,
    DatabaseAhead,
    DatabaseError,
    Err,
    MigrationContention,
    MigrationSet,
    MigrationUnavailable,
    Ok,
    StatementFailed,
    VerifiedCache,
    apply_migrations,
    connect,
    migration_status,
    open_database,
)
from per_user_db._bundled import bundled_migrations
from per_user_db.core._hrana import (
    BatchRequest,
    BatchResponse,
    BatchResult,
    ExecuteRequest,
    HranaError,
    Stmt,
    StreamError,
    StreamOk,
    StreamRequest,
    StreamResult,
)

from .conftest import read_only
from .migration_sets import ADD_COLUMN, INIT, REBUILD, WHENS, make_set
from .test_migrate import Target, target  # noqa: F401  (the fixture, reused)

THIRD = ["CREATE TABLE `extra` (`x` integer);"]
Answer = Callable[[Sequence[StreamRequest]], tuple[StreamResult, ...]]


class Wire:
    """Wraps ``db.pipeline``: ``before[n]`` runs before round trip ``n`` (0-based) goes
    out, ``after[n]`` once it came back, ``answer[n]`` replaces it; ``every_batch`` runs
    before each apply batch; ``rewrite`` changes each request on its way out."""

    def __init__(self, db: Database) -> None:
        self.sent: list[tuple[StreamRequest, ...]] = []
        self.before: dict[int, Callable[[], None]] = {}
        self.after: dict[int, Callable[[], None]] = {}
        self.answer: dict[int, Answer | DatabaseError] = {}
        self.rewrite: Callable[[StreamRequest], StreamRequest] | None = None
        self.after_results: Callable[[tuple[StreamResult, ...]], tuple[StreamResult, ...]] | None
        self.after_results = None
        self.every_batch: Callable[[], None] | None = None
        real: Callable[[Sequence[StreamRequest]], Awaitable[tuple[StreamResult, ...]]]
        real = db.pipeline

        async def pipeline(requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
            n = len(self.sent)
            self.sent.append(tuple(requests))
            if self.every_batch is not None and any(isinstance(r, BatchRequest) for r in requests):
                self.every_batch()
            if n in self.before:
                self.before[n]()
            try:
                scripted = self.answer.get(n)
                if isinstance(scripted, DatabaseError):
                    raise scripted
                if scripted is not None:
                    return scripted(requests)
                if self.rewrite is not None:
                    requests = [self.rewrite(r) for r in requests]
                results = await real(requests)
                if self.after_results is not None:
                    results = self.after_results(results)
                return results
            finally:
                if n in self.after:
                    self.after[n]()

        db.pipeline = pipeline  # type: ignore[method-assign]

    def batches(self) -> list[BatchRequest]:
        return [r for sent in self.sent for r in sent if isinstance(r, BatchRequest)]


def error_answer(code: str | None, message: str) -> Answer:
    """Every request of the round trip fails with this error."""

    def answer(requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        return tuple(StreamError(error=HranaError(message=message, code=code)) for _ in requests)

    return answer


def step_error_answer(step: int, code: str | None, message: str) -> Answer:
    """The batch fails at ``step`` (later steps skipped, ROLLBACK run), as a server says it."""

    def answer(requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        (batch,) = requests
        assert isinstance(batch, BatchRequest)
        count = len(batch.batch.steps)
        errors = tuple(
            HranaError(message=message, code=code) if i == step else None for i in range(count)
        )
        results = tuple(None for _ in range(count))
        return (
            StreamOk(
                response=BatchResponse(result=BatchResult(step_results=results, step_errors=errors))
            ),
        )

    return answer


class SecondConnection:
    """Another process's connection to the same file."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=0)

    def run(self, *statements: str) -> Callable[[], None]:
        def act() -> None:
            for sql in statements:
                self.conn.execute(sql)

        return act

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[tuple[Database, SecondConnection]]:
    path = tmp_path / "user.db"
    db = (await open_database(f"file:{path}", busy_timeout=0.05)).unwrap()
    other = SecondConnection(path)
    try:
        yield db, other
    finally:
        other.close()
        await db.close()


def version_rows(path: Path) -> list[tuple[object, ...]]:
    conn = read_only(path)
    try:
        return conn.execute(
            'SELECT hash, created_at FROM "__drizzle_migrations" ORDER BY created_at, hash'
        ).fetchall()
    finally:
        conn.close()


def first_two(tmp_path: Path) -> tuple[MigrationSet, MigrationSet]:
    return (
        make_set(tmp_path / "two", [INIT, ADD_COLUMN]),
        make_set(tmp_path / "three", [INIT, ADD_COLUMN, THIRD]),
    )


# --- the report -----------------------------------------------------------------------------


async def test_the_report_says_what_was_applied_and_what_it_cost(
    target: Target,  # noqa: F811
    tmp_path: Path,
) -> None:
    two, three = first_two(tmp_path)
    async with (await open_database(target.url)).unwrap() as db:
        report = (await apply_migrations(db, two)).unwrap()
        assert report.database == db.url
        assert report.applied == ("0000_step0", "0001_step1")
        assert report.already_applied == ()
        assert not report.up_to_date
        assert (report.attempts, report.round_trips) == (1, 2)
        assert report.ahead == ()
        assert report.duration_ms >= 0.0

        again = (await apply_migrations(db, two)).unwrap()
        assert again.database == db.url
        assert again.applied == ()
        assert again.already_applied == ("0000_step0", "0001_step1")
        assert again.up_to_date
        assert (again.attempts, again.round_trips) == (1, 1)

        more = (await apply_migrations(db, three)).unwrap()
        assert (more.applied, more.already_applied) == (("0002_step2",), report.applied)
        assert not more.up_to_date
        assert db.round_trips == 5
    assert version_rows(target.path) == [(m.hash, m.when) for m in three]


async def test_the_batch_sent_opens_with_begin_immediate(
    target: Target,  # noqa: F811
    tmp_path: Path,
) -> None:
    two, _ = first_two(tmp_path)
    async with (await open_database(target.url)).unwrap() as db:
        wire = Wire(db)
        (await apply_migrations(db, two)).unwrap()
    (batch,) = wire.batches()
    assert batch.batch.steps[0].stmt.sql == "BEGIN IMMEDIATE"
    assert [step.stmt.sql for step in batch.batch.steps[-2:]] == ["COMMIT", "ROLLBACK"]


class FakeClock:
    """Stands in for ``time`` inside ``_migrate``: each reading is 0.25 s after the last."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        self.now += 0.25
        return self.now


async def test_duration_is_the_clock_time_the_call_took(
    file_db: tuple[Database, SecondConnection],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, _ = file_db
    two, three = first_two(tmp_path)
    monkeypatch.setattr("per_user_db._migrate.time", FakeClock())
    applied = (await apply_migrations(db, three)).unwrap()
    up_to_date = (await apply_migrations(db, three)).unwrap()
    ahead = (await apply_migrations(db, two, allow_ahead=True)).unwrap()
    # One reading when the call starts, one when it ends.
    assert (applied.duration_ms, up_to_date.duration_ms, ahead.duration_ms) == (250.0,) * 3


async def test_defaults_are_the_bundled_migrations(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    db, _ = file_db
    two, _ = first_two(tmp_path)
    assert (await migration_status(db, two)).unwrap().pending == two.migrations
    bundled = bundled_migrations()
    status = (await migration_status(db)).unwrap()
    assert status.pending == bundled.migrations
    report = (await apply_migrations(db)).unwrap()
    assert report.applied == tuple(m.tag for m in bundled)


async def test_a_database_ahead_is_reported_not_cached_and_logged(
    target: Target,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    two, three = first_two(tmp_path)
    async with (await open_database(target.url)).unwrap() as db:
        (await apply_migrations(db, three)).unwrap()
        url = db.url
        refused = await apply_migrations(db, two)
        assert isinstance(refused, Err)
        assert isinstance(refused.error, DatabaseAhead)
        with caplog.at_level(logging.WARNING, logger="per_user_db"):
            report = (await apply_migrations(db, two, allow_ahead=True)).unwrap()
    head = three.migrations[-1]
    assert report.ahead == refused.error.unknown
    assert report.database == url
    assert [(r.hash, r.created_at) for r in report.ahead] == [(head.hash, head.when)]
    assert (report.applied, report.already_applied) == ((), ())
    assert report.up_to_date
    assert (report.attempts, report.round_trips) == (1, 1)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].getMessage() == str(refused.error)
    # A database ahead of this code is never remembered as verified: each connect checks.
    cache = VerifiedCache(ttl=60.0)
    for _ in range(2):
        result = await connect(target.url, migrations=two, allow_ahead=True, cache=cache)
        assert isinstance(result, Ok)
        async with result.value as db:
            assert db.round_trips == 1


# --- contention: the version guard ----------------------------------------------------------


async def test_a_row_added_below_the_newest_makes_the_batch_plan_again(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    # Only the count changes (drizzle's Expo migrator re-recording migration 0 with an
    # empty hash): the guard's count half must notice, and the re-plan then succeeds.
    db, other = file_db
    two, three = first_two(tmp_path)
    (await apply_migrations(db, two)).unwrap()
    wire = Wire(db)
    first = two.migrations[0]
    wire.before[1] = other.run(
        f"INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('', {first.when})"
    )
    report = (await apply_migrations(db, three)).unwrap()
    assert (report.applied, report.attempts, report.round_trips) == (("0002_step2",), 2, 4)
    assert len(wire.batches()) == 2
    path = tmp_path / "user.db"
    assert version_rows(path) == sorted(
        [("", first.when)] + [(m.hash, m.when) for m in three], key=lambda r: (r[1], r[0])
    )


async def test_another_migrator_that_got_there_first_is_seen_by_the_guard(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    # The newest row changes but not the count: only the guard's max half can notice.
    db, other = file_db
    two, three = first_two(tmp_path)
    (await apply_migrations(db, two)).unwrap()
    first, head = two.migrations[0], three.migrations[-1]
    other.run(f"INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('', {first.when})")()
    wire = Wire(db)
    wire.before[1] = other.run(
        "BEGIN IMMEDIATE",
        f"DELETE FROM __drizzle_migrations WHERE hash = '' AND created_at = {first.when}",
        THIRD[0],
        f"INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('{head.hash}', {head.when})",
        "COMMIT",
    )
    report = (await apply_migrations(db, three)).unwrap()
    assert (report.applied, report.attempts, report.round_trips) == ((), 2, 3)
    assert report.already_applied == tuple(m.tag for m in three)
    assert version_rows(tmp_path / "user.db") == [(m.hash, m.when) for m in three]


async def test_contention_gives_up_after_exactly_max_attempts(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    db, other = file_db
    two, three = first_two(tmp_path)
    (await apply_migrations(db, two)).unwrap()
    wire = Wire(db)
    wire.every_batch = other.run(
        f"INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('', {WHENS[0]})"
    )
    result = await apply_migrations(db, three, max_attempts=3)
    assert result == Err(MigrationContention(database=db.url, attempts=3))
    assert len(wire.batches()) == 3
    assert len(wire.sent) == 6
    default = await apply_migrations(db, three)
    assert default == Err(MigrationContention(database=db.url, attempts=12))
    assert len(wire.batches()) == 3 + 12


# --- contention: busy and locked ------------------------------------------------------------


async def test_a_locked_database_on_the_version_read_is_retried(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    db, other = file_db
    two, _ = first_two(tmp_path)
    wire = Wire(db)
    # Another writer is committing (EXCLUSIVE): SQLite answers the read SQLITE_BUSY.
    wire.before[0] = other.run("BEGIN EXCLUSIVE")
    wire.after[0] = other.run("ROLLBACK")
    report = (await apply_migrations(db, two)).unwrap()
    assert (report.applied, report.attempts, report.round_trips) == (
        ("0000_step0", "0001_step1"),
        2,
        3,
    )


async def test_a_busy_batch_is_retried(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    db, other = file_db
    two, _ = first_two(tmp_path)
    wire = Wire(db)
    wire.before[1] = other.run("BEGIN IMMEDIATE")  # holds the write lock during the batch
    wire.after[1] = other.run("ROLLBACK")
    report = (await apply_migrations(db, two)).unwrap()
    assert (report.attempts, report.round_trips) == (2, 4)
    assert version_rows(tmp_path / "user.db") == [(m.hash, m.when) for m in two]


BUSY_ANSWERS = [
    ("SQLITE_BUSY", "database is busy"),
    ("SQLITE_LOCKED", "database table is locked"),
    ("SQLITE_LOCKED_SHAREDCACHE", "locked"),
    (None, "database is locked"),
]


@pytest.mark.parametrize(("code", "message"), BUSY_ANSWERS)
async def test_busy_or_locked_answers_to_the_version_read_are_retried(
    file_db: tuple[Database, SecondConnection], tmp_path: Path, code: str | None, message: str
) -> None:
    db, _ = file_db
    two, _ = first_two(tmp_path)
    wire = Wire(db)
    wire.answer[0] = error_answer(code, message)
    report = (await apply_migrations(db, two)).unwrap()
    assert (report.attempts, report.round_trips) == (2, 3)


@pytest.mark.parametrize(("code", "message"), BUSY_ANSWERS)
@pytest.mark.parametrize("step", [0, 3])
async def test_busy_or_locked_inside_the_batch_is_retried(
    file_db: tuple[Database, SecondConnection],
    tmp_path: Path,
    code: str | None,
    message: str,
    step: int,
) -> None:
    db, _ = file_db
    two, _ = first_two(tmp_path)
    wire = Wire(db)
    wire.answer[1] = step_error_answer(step, code, message)
    report = (await apply_migrations(db, two)).unwrap()
    assert (report.attempts, report.round_trips) == (2, 4)
    assert version_rows(tmp_path / "user.db") == [(m.hash, m.when) for m in two]


@pytest.mark.parametrize("round_trip", [0, 1])
async def test_a_busy_transport_error_is_retried_and_another_is_returned(
    file_db: tuple[Database, SecondConnection], tmp_path: Path, round_trip: int
) -> None:
    db, _ = file_db
    two, _ = first_two(tmp_path)
    wire = Wire(db)
    wire.answer[round_trip] = DatabaseError("database is locked", "SQLITE_BUSY")
    report = (await apply_migrations(db, two)).unwrap()
    assert report.attempts == 2
    assert report.round_trips == 3 + round_trip

    fresh = make_set_fresh(tmp_path)
    wire = Wire(db)
    wire.answer[round_trip] = DatabaseError("server error", "SERVER_ERROR", status=503)
    failed = await apply_migrations(db, fresh)
    assert failed == Err(
        MigrationUnavailable(
            database=db.url, code="SERVER_ERROR", message="server error", status=503
        )
    )
    assert len(wire.sent) == round_trip + 1


def make_set_fresh(tmp_path: Path) -> MigrationSet:
    return make_set(tmp_path / "four", [INIT, ADD_COLUMN, THIRD, ["CREATE TABLE `more` (y);"]])


async def test_busy_every_time_backs_off_between_attempts_but_not_after_the_last(
    file_db: tuple[Database, SecondConnection],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, _ = file_db
    two, _ = first_two(tmp_path)
    wire = Wire(db)
    for n in range(7):
        wire.answer[n] = error_answer("SQLITE_BUSY", "database is locked")
    bounds: list[tuple[float, float]] = []
    waits: list[float] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high / 2

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    # _migrate has no clock seam: replace the jitter and the wait where it looks them up.
    monkeypatch.setattr("per_user_db._migrate.random.uniform", uniform)
    monkeypatch.setattr("per_user_db._migrate.anyio.sleep", sleep)
    result = await apply_migrations(db, two, max_attempts=7)
    assert result == Err(MigrationContention(database=db.url, attempts=7))
    # Full jitter under an exponential cap: 10 ms doubling, at most 0.5 s; none after #7.
    assert bounds == [(0, 0.02), (0, 0.04), (0, 0.08), (0, 0.16), (0, 0.32), (0, 0.5)]
    assert waits == [0.01, 0.02, 0.04, 0.08, 0.16, 0.25]
    assert len(wire.sent) == 7


# --- table rebuilds: foreign keys off, or nothing ---------------------------------------------


@pytest.mark.parametrize(
    ("instead", "codes"),
    [
        # The pragma request fails: SQLITE_ERROR from sqlite3, and from the local server
        # what sqld sends for it (no name for the primary code SQLITE_ERROR).
        ("SELECT * FROM no_such_table", {"file": "SQLITE_ERROR", "http": "SQLITE_UNKNOWN"}),
        # It "succeeds" but foreign keys stay on.
        ("SELECT 1", {"file": "FOREIGN_KEYS_ON", "http": "FOREIGN_KEYS_ON"}),
    ],
)
async def test_a_rebuild_never_runs_with_foreign_keys_on(
    target: Target,  # noqa: F811
    tmp_path: Path,
    instead: str,
    codes: dict[str, str],
) -> None:
    # With foreign keys on, the rebuild's DROP TABLE `parent` cascade-deletes every child.
    two, _ = first_two(tmp_path)
    rebuild = make_set(tmp_path / "rebuild", [INIT, ADD_COLUMN, REBUILD])
    async with (await open_database(target.url)).unwrap() as db:
        (await apply_migrations(db, two)).unwrap()
        await db.batch(
            [
                "INSERT INTO parent (id, name) VALUES (1, 'p1'), (2, 'p2')",
                "INSERT INTO child (parent_id, v) VALUES (1, 'a'), (2, 'b'), (2, 'c')",
            ]
        )
        wire = Wire(db)

        def sabotage(request: StreamRequest) -> StreamRequest:
            if isinstance(request, ExecuteRequest) and request.stmt.sql == (
                "PRAGMA foreign_keys = OFF"
            ):
                return ExecuteRequest(stmt=Stmt(sql=instead, want_rows=False))
            return request

        wire.rewrite = sabotage
        result = await apply_migrations(db, rebuild)
        assert isinstance(result, Err)
        assert isinstance(result.error, MigrationUnavailable)
        assert result.error.code == codes[target.kind]
        assert (await db.execute("SELECT count(*) FROM child"))[0][0] == 3
    assert version_rows(target.path) == [(m.hash, m.when) for m in two]


async def test_an_installed_double_answers_with_the_arguments_it_was_given(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    from per_user_db.testing import mock_apply_migrations_ok

    db, _ = file_db
    two, _ = first_two(tmp_path)
    with mock_apply_migrations_ok(attempts=9) as mock:
        result = await apply_migrations(db, two, allow_ahead=True, max_attempts=5)
    assert result.unwrap().attempts == 9
    assert mock.calls[0].args == (db, two)
    assert mock.calls[0].kwargs == {"allow_ahead": True, "max_attempts": 5}
    assert db.round_trips == 0


# --- what the errors, logs and waits say ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [("SQLITE_BUSY", "held by an open transaction"), ("SQL_ERROR", "database is locked")],
)
async def test_a_transport_error_is_busy_by_its_code_or_its_message(
    file_db: tuple[Database, SecondConnection], tmp_path: Path, code: str, message: str
) -> None:
    db, _ = file_db
    two, three = first_two(tmp_path)
    for round_trip, migrations in ((0, two), (1, three)):  # the read, then a batch
        wire = Wire(db)
        wire.answer[round_trip] = DatabaseError(message, code)
        report = (await apply_migrations(db, migrations)).unwrap()
        assert report.attempts == 2
        assert report.applied


async def test_errors_name_the_database(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    db, _ = file_db
    two, _ = first_two(tmp_path)
    wire = Wire(db)
    wire.answer[0] = error_answer("SQLITE_IOERR", "disk I/O error")
    assert await apply_migrations(db, two) == Err(
        MigrationUnavailable(database=db.url, code="SQLITE_IOERR", message="disk I/O error")
    )
    (await apply_migrations(db, two)).unwrap()
    failing = make_set(
        tmp_path / "failing", [INIT, ADD_COLUMN, ["INSERT INTO nowhere VALUES (1);"]]
    )
    failed = await apply_migrations(db, failing)
    assert isinstance(failed, Err)
    assert isinstance(failed.error, StatementFailed)
    assert failed.error.database == db.url
    assert failed.error.migration == "0002_step2"


async def test_logs_say_what_happened_to_which_database(
    file_db: tuple[Database, SecondConnection],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db, other = file_db
    two, three = first_two(tmp_path)
    wire = Wire(db)
    wire.after_results = lambda results: tuple(with_durations(r, 1.25) for r in results)
    with caplog.at_level(logging.DEBUG, logger="per_user_db"):
        (await apply_migrations(db, two)).unwrap()
        (await apply_migrations(db, two)).unwrap()
        wire.every_batch = other.run(
            f"INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('', {WHENS[0]})"
        )
        wire.answer[len(wire.sent) + 1] = step_error_answer(0, "SQLITE_BUSY", "busy")
        await apply_migrations(db, three, max_attempts=2)
    url = db.url
    # INIT has three statements and ADD_COLUMN one, each with its version row: 1.25 ms a step.
    assert [r.getMessage() for r in caplog.records] == [
        f"applied migration 0000_step0 to {url} in 5.0 ms",
        f"applied migration 0001_step1 to {url} in 2.5 ms",
        f"{url} is up to date (2 migrations)",
        f"{url}: the database was busy; planning again",
        f"{url}: the version table changed; planning again",
    ]


def with_durations(result: StreamResult, ms: float) -> StreamResult:
    """``result`` as a database that takes ``ms`` per batch step would answer it."""
    match result:
        case StreamOk(response=BatchResponse(result=batch)):
            timed = tuple(
                None if r is None else dataclasses.replace(r, query_duration_ms=ms)
                for r in batch.step_results
            )
            return StreamOk(
                response=BatchResponse(result=dataclasses.replace(batch, step_results=timed))
            )
    return result


async def test_only_busy_waits_before_the_next_attempt(
    file_db: tuple[Database, SecondConnection],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, other = file_db
    two, three = first_two(tmp_path)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("per_user_db._migrate.anyio.sleep", sleep)
    wire = Wire(db)
    wire.answer[1] = step_error_answer(0, "SQLITE_BUSY", "busy")
    assert (await apply_migrations(db, two)).unwrap().attempts == 2
    assert len(waits) == 1  # busy: wait, so the lock holder can finish
    wire.every_batch = other.run(
        f"INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('', {WHENS[0]})"
    )
    assert isinstance(await apply_migrations(db, three, max_attempts=3), Err)
    assert len(waits) == 1  # another migrator won: plan again at once


async def test_a_database_found_ahead_after_a_retry_reports_its_attempts(
    file_db: tuple[Database, SecondConnection], tmp_path: Path
) -> None:
    db, _ = file_db
    two, three = first_two(tmp_path)
    (await apply_migrations(db, three)).unwrap()
    wire = Wire(db)
    wire.answer[0] = error_answer("SQLITE_BUSY", "busy")
    report = (await apply_migrations(db, two, allow_ahead=True)).unwrap()
    assert (report.attempts, report.round_trips) == (2, 2)
    assert len(report.ahead) == 1
