"""The dbt project as Airflow task groups, through astronomer-cosmos.

Cosmos renders from a manifest built ahead of time (``ledgerlink prepare`` runs ``dbt parse``),
so parsing the DAG never invokes dbt. Each model becomes a task running ``dbt build`` for it
(the model and its tests), so one model can be rerun from the Airflow UI.

Each storage region is built on its own, in its own database: a region's task group sets
``LEDGERLINK_DBT_REGION``, and ``profiles.yml`` then reads that region's variables
(``LEDGERLINK_PGHOST_EU`` ...), which ``ledgerlink``'s environment derives from the region URLs.
Only the region's name travels with the task, so no password is rendered or serialised.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from ledgerlink.settings import load_settings
from ledgerlink.warehouse.regions import Region

#: The models the scorer needs, then the marts built from its decisions.
MATCH_FEATURE_SELECTORS = ["path:models/staging", "path:models/intermediate", "path:models/marts/scoring"]
REPORTING_SELECTORS = ["path:models/marts/reporting", "path:models/marts/delivery"]

#: Flags of every model task's ``dbt build``. A task builds one model in a project copy that
#: Cosmos deletes afterwards, so dbt's artifacts there are thrown away unread: writing
#: ``manifest.json`` (once after parsing, once after the build), ``run_results.json`` and the
#: graph files was half of each dbt invocation's time (py-spy), and its file log the same kind of
#: waste. ``partial_parse.msgpack``, which Cosmos keeps warm across tasks, is written regardless.
#: No usage statistics: nothing leaves the machine but the configured services.
DBT_BUILD_FLAGS = ["--no-write-json", "--log-level-file", "none", "--no-send-anonymous-usage-stats"]


def manifest_path(project_dir: Path) -> Path:
    return project_dir / "target" / "manifest.json"


def freeze_heap(context: Any) -> None:
    """Move every object alive at the task's start (Airflow, dbt's modules) out of the garbage
    collector's reach. Cosmos runs a full ``gc.collect()`` after each dbt command to release
    dbt's adapters; over a whole task process that walk was a fifth of a run's samples (py-spy,
    smoke scale). Frozen, it walks only what the dbt command created."""
    gc.freeze()


def region_group_id(group_id: str, region: Region) -> str:
    """``group_id`` for the configuration database's own region (the embedded default), else
    ``group_id_<region>``."""
    return group_id if region.shares_configuration_database else f"{group_id}_{region.name}"


def dbt_task_group(
    group_id: str, select: list[str], region: Region | None = None, **kwargs: Any
) -> DbtTaskGroup:
    """The models ``select`` names as a task group building ``region``'s database (default: the
    configuration database's own region)."""
    operator_args = dict(kwargs.pop("operator_args", {}))
    if region is not None:
        group_id = region_group_id(group_id, region)
        region_variable = "" if region.shares_configuration_database else region.name
        operator_args["env"] = {**operator_args.get("env", {}), "LEDGERLINK_DBT_REGION": region_variable}
    project_dir = load_settings().dbt_project_dir
    manifest = manifest_path(project_dir)
    if not manifest.exists():
        raise FileNotFoundError(
            f"{manifest} is missing: run `ledgerlink prepare` (it runs `dbt parse`) first"
        )
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=project_dir, manifest_path=manifest, install_dbt_deps=False
        ),
        profile_config=ProfileConfig(
            profile_name="ledgerlink", target_name="dev", profiles_yml_filepath=project_dir / "profiles.yml"
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=str(Path(sys.executable).parent / "dbt"),
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=select,
            test_behavior=TestBehavior.BUILD,
            # Lineage assets are named from the profile's host, a socket folder for the embedded
            # server, and Airflow rejects a postgres:// asset URI without a host.
            emit_datasets=False,
        ),
        operator_args={"pre_execute": freeze_heap, "dbt_cmd_flags": DBT_BUILD_FLAGS, **operator_args},
        **kwargs,
    )
