"""What the local Turso remembers across restarts: databases, groups and the signing key.

One JSON file, ``DATA_DIR/local-turso.json``, beside the ``<name>.db`` files. It is
rewritten whole on every change (write a temporary file, then rename it over the old
one), so a crash leaves either the old or the new file, never half of one.

The ``.db`` files stay the truth about which databases exist: on start, a file with no
record is adopted into the ``default`` group (a directory served by the plain protocol
server becomes a local Turso as is), and a record whose file is gone is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import logging
import os
import secrets
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from per_user_db.core._names import is_valid_database_name
from per_user_db.dev._tokens import TokenSigner

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DEFAULT_GROUP",
    "LOCAL_LOCATION",
    "REGISTRY_FILE",
    "DatabaseRecord",
    "GroupRecord",
    "Registry",
    "RegistryCorrupt",
    "iso_timestamp",
]

_log = logging.getLogger(__name__)

REGISTRY_FILE = "local-turso.json"
DEFAULT_GROUP = "default"
LOCAL_LOCATION = "local"
"""The one "region" every local database lives in."""

_FORMAT_VERSION = 1


class RegistryCorrupt(ValueError):
    """``local-turso.json`` cannot be read; the message says which file and why."""


def iso_timestamp(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseRecord:
    name: str
    db_id: str
    group: str
    created_at: str
    """ISO 8601, UTC."""
    generation: int = 0
    """Bumped by ``POST …/auth/rotate``; tokens minted under an older one are refused."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRecord:
    name: str
    uuid: str
    location: str
    created_at: str
    generation: int = 0


class Registry:
    """The metadata of one data dir. Mutate, then ``await save()``."""

    def __init__(
        self,
        path: Path,
        *,
        signer: TokenSigner,
        organization_id: str,
        groups: dict[str, GroupRecord],
        databases: dict[str, DatabaseRecord],
    ) -> None:
        self.path = path
        self.signer = signer
        self.organization_id = organization_id
        self._groups = groups
        self._databases = databases
        self._save_lock = asyncio.Lock()

    # --- loading -----------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, *, now: float) -> Registry:
        """Load (or create) the registry of ``data_dir`` and reconcile it with the files.

        Reads and writes synchronously: it runs once, before the server listens.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / REGISTRY_FILE
        if path.exists():
            registry = cls._load(path)
        else:
            registry = cls(
                path,
                signer=TokenSigner.generate(),
                organization_id=str(uuid.uuid4()),
                groups={},
                databases={},
            )
        changed = not path.exists()
        if DEFAULT_GROUP not in registry._groups:
            registry._groups[DEFAULT_GROUP] = GroupRecord(
                name=DEFAULT_GROUP,
                uuid=str(uuid.uuid4()),
                location=LOCAL_LOCATION,
                created_at=iso_timestamp(now),
            )
            changed = True
        changed |= registry._reconcile(data_dir, now)
        if changed:
            _write_atomically(path, registry._serialize())
        return registry

    @classmethod
    def _load(cls, path: Path) -> Registry:
        try:
            data = json.loads(path.read_bytes())
            if data.get("version") != _FORMAT_VERSION:
                raise RegistryCorrupt(
                    f"{path}: format version {data.get('version')!r} is not {_FORMAT_VERSION}"
                )
            signer = TokenSigner.from_private_bytes(base64.b64decode(data["signing_key"]))
            groups = {g["name"]: GroupRecord(**g) for g in data["groups"]}
            databases = {d["name"]: DatabaseRecord(**d) for d in data["databases"]}
            organization_id = str(data["organization_id"])
        except RegistryCorrupt:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise RegistryCorrupt(
                f"{path} is not a readable local Turso registry ({type(exc).__name__}: {exc}); "
                "move it away to start with an empty registry (the .db files are adopted)"
            ) from exc
        return cls(
            path,
            signer=signer,
            organization_id=organization_id,
            groups=groups,
            databases=databases,
        )

    def _reconcile(self, data_dir: Path, now: float) -> bool:
        on_disk = {
            p.stem for p in data_dir.glob("*.db") if p.is_file() and is_valid_database_name(p.stem)
        }
        gone = [name for name in self._databases if name not in on_disk]
        for name in gone:
            _log.warning("database %r has a record but no file in %s; dropping it", name, data_dir)
            del self._databases[name]
        adopted = sorted(on_disk - self._databases.keys())
        for name in adopted:
            self._databases[name] = DatabaseRecord(
                name=name,
                db_id=str(uuid.uuid4()),
                group=DEFAULT_GROUP,
                created_at=iso_timestamp(now),
            )
        return bool(gone or adopted)

    # --- reading -----------------------------------------------------------------------

    def database(self, name: str) -> DatabaseRecord | None:
        return self._databases.get(name)

    def databases(self) -> list[DatabaseRecord]:
        """Every database, ordered by name (the order listing pages follow)."""
        return [self._databases[name] for name in sorted(self._databases)]

    @property
    def database_count(self) -> int:
        return len(self._databases)

    def group(self, name: str) -> GroupRecord | None:
        return self._groups.get(name)

    def groups(self) -> list[GroupRecord]:
        return [self._groups[name] for name in sorted(self._groups)]

    # --- changing ----------------------------------------------------------------------

    def put_database(self, record: DatabaseRecord) -> None:
        self._databases[record.name] = record

    def drop_database(self, name: str) -> None:
        self._databases.pop(name, None)

    def put_group(self, record: GroupRecord) -> None:
        self._groups[record.name] = record

    async def save(self) -> None:
        """Write the current state; concurrent saves are serialized, the last one wins."""
        async with self._save_lock:
            # Serialized on the loop, so the snapshot is consistent; written off it, since
            # thousands of databases make a file worth not blocking on.
            data = self._serialize()
            await asyncio.to_thread(_write_atomically, self.path, data)

    def _serialize(self) -> bytes:
        document = {
            "version": _FORMAT_VERSION,
            "organization_id": self.organization_id,
            "signing_key": base64.b64encode(self.signer.private_bytes()).decode("ascii"),
            "groups": [asdict(g) for g in self.groups()],
            "databases": [asdict(d) for d in self.databases()],
        }
        return json.dumps(document, indent=1).encode("utf-8")


def _write_atomically(path: Path, data: bytes) -> None:
    # Same directory, so the rename cannot cross file systems. No fsync: this is a dev
    # server, and the rename alone already rules out a torn file after a crash.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # 0600: the file holds the key that signs every database token.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
