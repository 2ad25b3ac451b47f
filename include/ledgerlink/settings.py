"""Where ledgerlink keeps its state and which warehouse it talks to.

Every path and every external address is resolved here, from environment variables with
embedded defaults, so that pointing at real services is configuration only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

#: The one setting that points the warehouse and Airflow's metadata at an external PostgreSQL.
DATABASE_URL_VARIABLE = "LEDGERLINK_DATABASE_URL"
STATE_DIR_VARIABLE = "LEDGERLINK_STATE_DIR"

WAREHOUSE_DATABASE = "ledgerlink"
AIRFLOW_DATABASE = "airflow"


@dataclass(frozen=True)
class Settings:
    """Resolved locations; build with :func:`load_settings`."""

    state_dir: Path
    database_url: str | None

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def blob_dir(self) -> Path:
        return Path(os.environ.get("LEDGERLINK_BLOB_DIR", self.state_dir / "blobs"))

    @property
    def mailbox_dir(self) -> Path:
        return self.state_dir / "mailbox"

    @property
    def fixtures_dir(self) -> Path:
        return self.state_dir / "fixtures"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def dags_dir(self) -> Path:
        return REPOSITORY_ROOT / "dags"

    @property
    def plugins_dir(self) -> Path:
        return REPOSITORY_ROOT / "plugins"

    @property
    def dbt_project_dir(self) -> Path:
        return REPOSITORY_ROOT / "dbt_project"

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


def load_settings() -> Settings:
    """Read the environment: ``LEDGERLINK_STATE_DIR`` (default ``.state`` in the repository) and
    ``LEDGERLINK_DATABASE_URL`` (default: the embedded server)."""
    state_dir = Path(os.environ.get(STATE_DIR_VARIABLE, REPOSITORY_ROOT / ".state")).resolve()
    return Settings(state_dir=state_dir, database_url=os.environ.get(DATABASE_URL_VARIABLE) or None)
