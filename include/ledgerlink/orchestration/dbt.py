"""The dbt project as Airflow task groups, through astronomer-cosmos.

Cosmos renders from a manifest built ahead of time (``ledgerlink prepare`` runs ``dbt parse``),
so parsing the DAG never invokes dbt. Each group runs dbt twice per window, whatever its number of
models (Cosmos's watcher mode): ``dbt_producer_watcher`` builds every model of the group in one
``dbt build``, then one task per model reads its outcome, and ``dbt_project_test`` runs the group's
data tests in one ``dbt test``. A dbt invocation costs a fixed second or so (start-up, loading the
parse, Cosmos's project copy) before any SQL, and one per model was most of a 15-minute window.
Clearing a model's task reruns that model alone (``dbt run``); clearing the test task reruns the
tests.

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

from airflow.sdk import TriggerRule
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import (
    PRODUCER_WATCHER_DONE_TASK_ID,
    PRODUCER_WATCHER_TASK_ID,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    TestBehavior,
)

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

#: Left out of the scheduled builds. Unit tests check the SQL against fixed fixtures, so a window
#: cannot change their outcome: they run where the SQL changes (``tests/dbt``' ``dbt build``), as
#: dbt recommends. The sources' own tests read the whole raw history (``unique`` over every landed
#: row), and no scheduled build ran them before the groups were built whole either.
SCHEDULED_BUILD_EXCLUDES = ["resource_type:unit_test", "source:*"]


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
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=project_dir, manifest_path=manifest, install_dbt_deps=False
        ),
        profile_config=ProfileConfig(
            profile_name="ledgerlink", target_name="dev", profiles_yml_filepath=project_dir / "profiles.yml"
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=str(Path(sys.executable).parent / "dbt"),
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=select,
            exclude=SCHEDULED_BUILD_EXCLUDES,
            # The group's tests in one `dbt test` after its models: a failed test stops what
            # follows the group (the scorer), no longer the group's next models. BUILD has no
            # watcher form, and AFTER_EACH reports every test through XComs, which cost more
            # than the invocations it saved (36.8 s of dbt against 15.5 s + 7.0 s, 1k window).
            test_behavior=TestBehavior.AFTER_ALL,
            # Lineage assets are named from the profile's host, a socket folder for the embedded
            # server, and Airflow rejects a postgres:// asset URI without a host.
            emit_datasets=False,
        ),
        operator_args={"pre_execute": freeze_heap, "dbt_cmd_flags": DBT_BUILD_FLAGS, **operator_args},
        **kwargs,
    )
    build_before_model_tasks(group)
    return group


def build_before_model_tasks(group: DbtTaskGroup) -> None:
    """Start the model tasks once the group's ``dbt build`` has finished, whatever its outcome.

    Cosmos lets a task group's model tasks start beside the build and wait for it, deferred to the
    triggerer; run one task at a time (``airflow dags test``, so ``ledgerlink run``, runs a
    deferred task's trigger in line) and a model task picked first would wait for a build that
    cannot start. After the build, each model task finds its model's outcome at once: built, or
    failed, and then its retry runs the model itself (``dbt run``). So the build is not retried:
    Cosmos would only skip a second attempt."""
    producer = group.children[f"{group.group_id}.{PRODUCER_WATCHER_TASK_ID}"]
    producer.retries = 0
    for model_task in list(group.get_roots()):
        if model_task is not producer:
            producer >> model_task
            model_task.trigger_rule = TriggerRule.ALL_DONE
    # Cosmos's gate after the build stops what follows the group when the build failed, even once
    # every model task has rebuilt its model; the model tasks and the test task are the gate.
    group.children[f"{group.group_id}.{PRODUCER_WATCHER_DONE_TASK_ID}"].trigger_rule = TriggerRule.ALL_DONE
