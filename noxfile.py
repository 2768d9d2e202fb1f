"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, and
``nox -s mutants`` (mutation testing; slow, not part of CI)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (pass pytest arguments after ``--``)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over everything."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests, the benchmarks and this file."""
    session.install("-e", ".[dev]")
    session.run("mypy")


# Each module that guards data, with the smallest test selection that exercises it: mutmut
# runs only these (and, per mutant, only those of them that reach the mutated function).
MUTATED_MODULES: dict[str, tuple[str, ...]] = {
    "per_user_db/core/_planner.py": ("tests/core/test_planner.py",),
    "per_user_db/core/_names.py": ("tests/core/test_names.py",),
    "per_user_db/core/_migrations.py": ("tests/core/test_migration_files.py",),
    "per_user_db/core/_apply.py": ("tests/core/test_apply.py",),
    "per_user_db/_migrate.py": ("tests/test_migrate_guarantees.py",),
    "per_user_db/_users.py": ("tests/test_users.py",),
    "per_user_db/turso/_client.py": ("tests/test_platform_client.py",),
}
# Tests of the pure core start no thread: their mutants fork straight from mutmut's process,
# which is faster. The others are forked from mutmut's fork server, a process that has only
# collected the tests: one that ran them holds SQLite worker threads and event loops that a
# forked child cannot use (those mutants only ever time out).
_FORK_SAFE = {
    "per_user_db/core/_planner.py",
    "per_user_db/core/_names.py",
    "per_user_db/core/_migrations.py",
}
# What a scratch copy needs: the package, the tests, the bundled folders, the config.
_COPIED = ("per_user_db", "tests", "migrations", "schema", "pyproject.toml")
# mutmut's trampolines import socket and threading, which the purity test forbids in the
# core; twenty child processes would import the unmutated installed package anyway.
_NEVER_RUN = (
    "--ignore=tests/core/test_purity.py",
    "--ignore=tests/interop",
    "--deselect=tests/test_migrate.py::test_twenty_processes",
)
_KILLED = {"killed", "timeout", "caught by type check"}


def _mutmut_config(module: str, tests: tuple[str, ...]) -> str:
    def toml_list(values: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["per_user_db"]\n'
        f"only_mutate = {toml_list([module])}\n"
        'also_copy = ["migrations", "schema"]\n'
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', *_NEVER_RUN])}\n"
        "use_git_change_detection = false\n"
        f'process_isolation = "{"fork" if module in _FORK_SAFE else "forkserver"}"\n'
    )


def _scratch_copy(module: str, root: Path) -> Path:
    """A private copy of the repository for one module's run: runs never share ``mutants/``."""
    work = root / module.removesuffix(".py").replace("/", ".")
    work.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", ".hypothesis")
    for name in _COPIED:
        source = Path(name)
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=skip)
        else:
            shutil.copy2(source, work / name)
    with (work / "pyproject.toml").open("a") as config:
        config.write(_mutmut_config(module, MUTATED_MODULES[module]))
    return work


@nox.session(python=PYTHON)
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the modules that guard data; not part of CI.

    ``nox -s mutants`` runs every module of ``MUTATED_MODULES``; ``nox -s mutants --
    per_user_db/_users.py`` only the ones named. Each module runs in its own scratch copy
    under a new temporary folder (``MUTANTS_DIR`` picks its parent), so runs never
    collide. Prints killed/total per module and the survivors.
    """
    unknown = [m for m in session.posargs if m not in MUTATED_MODULES]
    if unknown:
        session.error(f"not a mutated module: {', '.join(unknown)}; known: {list(MUTATED_MODULES)}")
    session.install("-e", ".[mutants]")
    modules = session.posargs or list(MUTATED_MODULES)
    parent = os.environ.get("MUTANTS_DIR")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="per-user-db-mutants-", dir=parent))
    session.log(f"scratch copies in {root}")
    jobs = str(os.cpu_count() or 2)
    scores: list[tuple[str, int, int, list[str]]] = []
    for module in modules:
        work = _scratch_copy(module, root)
        started = time.monotonic()
        with session.chdir(work):
            log = work / "mutmut.log"
            with log.open("w") as output:
                try:
                    session.run("mutmut", "run", "--max-children", jobs, stdout=output)
                except CommandFailed:
                    session.error(f"mutmut failed on {module}:\n{log.read_text()[-4000:]}")
            listing = session.run("mutmut", "results", "--all", "true", silent=True)
            status = dict(
                line.strip().rsplit(": ", 1)
                for line in str(listing).splitlines()
                if line.strip().startswith("per_user_db.")
            )
            survivors = sorted(name for name, state in status.items() if state not in _KILLED)
            for name in survivors:
                session.run("mutmut", "show", name)
        killed = len(status) - len(survivors)
        session.log(
            f"{module}: {killed}/{len(status)} killed, {len(survivors)} not "
            f"({time.monotonic() - started:.0f} s, in {work})"
        )
        scores.append((module, killed, len(status), survivors))
    width = max(len(module) for module, *_ in scores)
    print("\nmutation score (killed / total; survivors include 'no tests')")
    for module, killed, total, survivors in scores:
        share = f"{100 * killed / total:.0f}%" if total else "-"
        print(f"  {module:<{width}}  {killed:>4} / {total:<4} {share:>5}  {len(survivors)} left")
        for name in survivors:
            print(f"      {name}")
