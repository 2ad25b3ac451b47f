"""The raw and ops schemas, applied in order from ``migrations/NNN_*.sql``, each exactly once."""

from __future__ import annotations

from importlib import resources

import psycopg

_LOCK_ID = 7_311_402  # advisory lock: concurrent tasks never apply the same migration twice


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply every migration not yet applied; return the names applied now."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("create schema if not exists ops")
        conn.execute(
            "create table if not exists ops.schema_migrations"
            " (name text primary key, applied_at timestamptz not null default now())"
        )
        done = {row[0] for row in conn.execute("select name from ops.schema_migrations")}
        folder = resources.files("ledgerlink.warehouse") / "migrations"
        for migration in sorted(folder.iterdir(), key=lambda path: path.name):
            if not migration.name.endswith(".sql") or migration.name in done:
                continue
            conn.execute(migration.read_text(encoding="utf-8"))  # type: ignore[arg-type]
            conn.execute("insert into ops.schema_migrations (name) values (%s)", (migration.name,))
            applied_now.append(migration.name)
    return applied_now
