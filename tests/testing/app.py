"""A stand-in for application code: it imports the library's functions by name."""

from __future__ import annotations

from per_user_db import Credentials, Database, Err, Ok, apply_migrations, create_database


async def sign_up(user_id: str) -> Credentials | str:
    match await create_database(user_id):
        case Ok(credentials):
            return credentials
        case Err(error):
            return f"sign-up failed: {error}"


async def upgrade(db: Database) -> tuple[str, ...] | str:
    match await apply_migrations(db):
        case Ok(report):
            return report.applied
        case Err(error):
            return f"upgrade failed: {error}"
