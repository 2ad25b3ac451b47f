"""The environment every ledgerlink process shares: Airflow's home, metadata database, dags and
plugins folders, and the warehouse settings dbt reads. Set once by the ``ledgerlink`` command
before Airflow or dbt is imported or started, so all of them agree on one warehouse."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet

from ledgerlink.settings import AIRFLOW_DATABASE, STATE_DIR_VARIABLE, Settings
from ledgerlink.warehouse.database import ServerAddress, dbt_environment
from ledgerlink.warehouse.regions import region_dbt_environment


def _airflow_fernet_key(settings: Settings) -> str:
    """Airflow encrypts connection passwords in its metadata with this key, kept in the state folder."""
    key_file = settings.secrets_dir / "airflow-fernet.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_bytes(Fernet.generate_key())
    return key_file.read_text().strip()


def airflow_environment(settings: Settings, address: ServerAddress) -> dict[str, str]:
    """Variables for Airflow and dbt processes. Values already set in the caller's environment win,
    so an operator can override any of them."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    defaults = {
        STATE_DIR_VARIABLE: str(settings.state_dir),
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.plugins_dir),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": _airflow_fernet_key(settings),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": address.sqlalchemy_url(AIRFLOW_DATABASE, "psycopg2"),
        "AIRFLOW__COSMOS__ENABLE_CACHE": "True",
        # the state's own cache (dbt's partial parse, ...): the default /tmp/cosmos is shared by
        # every checkout on the machine, and one checkout's parse then invalidates another's
        "AIRFLOW__COSMOS__CACHE_DIR": str(settings.state_dir / "cosmos"),
        "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
        # no network beyond the configured services: Cosmos would otherwise report usage
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # The watcher-mode build is never retried (orchestration/dbt.py): each model's own task
        # reruns its model. Cosmos would otherwise rewrite its whole XCom backup (compiled SQL
        # included) into a Variable after every XCom it pushes, for a retry that never comes.
        "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "False",
        "DBT_PROFILES_DIR": str(settings.dbt_project_dir),
        # A dbt task group's `dbt test` runs only tests whose parents the group builds, so a
        # relationships test never runs before the model it checks exists.
        "DBT_INDIRECT_SELECTION": "cautious",
        "DBT_PROJECT_DIR": str(settings.dbt_project_dir),
        **dbt_environment(address),
        # each storage region's dbt profile variables, for its own dbt task groups
        **region_dbt_environment(settings),
    }
    environment = {name: os.environ.get(name, value) for name, value in defaults.items()}
    # Airflow starts its own subprocesses (`airflow standalone` runs `airflow scheduler`, ...) by
    # name, so this interpreter's scripts come first on PATH even when the venv is not activated.
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    environment["PATH"] = path if path.split(os.pathsep)[0] == scripts else f"{scripts}{os.pathsep}{path}"
    return environment


def connection_variable(conn_id: str, connection: Mapping[str, object]) -> tuple[str, str]:
    """An ``AIRFLOW_CONN_<ID>`` variable holding ``connection`` in Airflow's JSON form."""
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection)
