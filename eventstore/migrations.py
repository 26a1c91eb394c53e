"""Versioned SQL migrations (``migrations/NNN_name.sql``), applied idempotently at start-up.

Each file runs once, in its own transaction, under a transaction-level advisory lock so
that several processes starting together apply it exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from eventstore.store import Connection

_LOCK_KEY = 0x65_6F_6D_5F_6D_69  # "eom_mi": one key for every eom process
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    folder = Path(__file__).with_name("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 001, 002, ... without gaps: {versions}")
    return found


async def migrate(conn: Connection) -> list[int]:
    """Apply what is missing; return the versions applied now."""
    async with conn.transaction():
        # Even IF NOT EXISTS races between two processes: take the lock first.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
    applied_now = []
    for migration in available():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            done = await conn.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    return applied_now
