"""The dags folder imports cleanly, fast, and every DAG carries tags, docs and retries."""

from __future__ import annotations

import time

import pytest


@pytest.fixture(scope="module")
def dag_bag(prepared):  # noqa: ANN001 - pytest fixture
    from airflow.dag_processing.dagbag import DagBag

    settings, _ = prepared
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(settings.dags_dir))
    bag.parse_seconds = time.perf_counter() - started
    return bag


def test_dags_import_without_errors(dag_bag) -> None:  # noqa: ANN001
    assert dag_bag.import_errors == {}
    assert "ledgerlink_reconcile" in dag_bag.dags


def test_dag_parse_time_is_reported(dag_bag, capsys) -> None:  # noqa: ANN001
    with capsys.disabled():
        print(f"\nDAG folder parse time: {dag_bag.parse_seconds:.2f}s for {len(dag_bag.dags)} DAG(s)")
    assert dag_bag.parse_seconds > 0


def test_every_task_retries_with_exponential_backoff(dag_bag) -> None:  # noqa: ANN001
    for dag in dag_bag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert dag.doc_md, f"{dag.dag_id} has no doc_md"
        assert dag.schedule is not None
        for task in dag.tasks:
            if task.task_id == "report_failures":
                continue  # it only reports a failure that already happened; retrying cannot help
            if task.task_id.endswith(".dbt_producer_watcher"):
                continue  # a dbt group's build: each model's own task retries (reruns) its model
            assert task.retries >= 1, f"{task.task_id} does not retry"
            assert task.retry_exponential_backoff, f"{task.task_id} does not back off"


def test_reconcile_dag_runs_every_stage_in_order(dag_bag) -> None:  # noqa: ANN001
    dag = dag_bag.dags["ledgerlink_reconcile"]
    task_ids = set(dag.task_ids)
    assert {"prepare_warehouse", "extract_qonto", "extract_square", "extract_quickbooks"} <= task_ids
    scoring = dag.get_task("score_and_route")
    plan = dag.get_task("plan_delivery")
    delivery = dag.get_task("deliver_documents")
    dbt_feature_tasks = {t for t in task_ids if t.startswith("dbt_match_features.")}
    dbt_reporting_tasks = {t for t in task_ids if t.startswith("dbt_reporting_marts.")}
    assert dbt_feature_tasks and dbt_reporting_tasks
    assert dbt_feature_tasks & scoring.upstream_task_ids
    # the scorer reads nothing the group's data tests have not passed
    assert "dbt_match_features.dbt_project_test" in scoring.upstream_task_ids
    # delivery is planned after scoring, and the reporting marts wait for delivery
    assert plan.upstream_task_ids == {scoring.task_id, "prepare_warehouse"}
    assert delivery.upstream_task_ids == {plan.task_id}
    assert dbt_reporting_tasks & dag.get_task("delivery_finished").downstream_task_ids


def test_delivery_is_mapped_over_shards_of_each_workspace(dag_bag) -> None:  # noqa: ANN001
    """Each shard of a workspace's outbox is its own task instance, so the executor runs them in
    parallel (issue 7: scale out on Airflow's own executors)."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from ledgerlink.orchestration.operators import EmailDeliveryOperator, PlanDeliveryOperator

    dag = dag_bag.dags["ledgerlink_reconcile"]
    delivery = dag.get_task("deliver_documents")
    assert isinstance(delivery, MappedOperator)
    assert delivery.operator_class is EmailDeliveryOperator
    assert isinstance(dag.get_task("plan_delivery"), PlanDeliveryOperator)


def test_one_workspace_failing_never_blocks_another(dag_bag) -> None:  # noqa: ANN001
    """Per-workspace work is mapped, and the shared stages after a fan-out wait for every mapped
    task to finish, failed or not."""
    from airflow.sdk import TriggerRule
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dag_bag.dags["ledgerlink_reconcile"]
    assert isinstance(dag.get_task("score_and_route"), MappedOperator)
    for gate_id, fan_out in (
        ("extraction_finished", "extract_"),
        ("plan_delivery", "score_and_route"),
        ("delivery_finished", "deliver_documents"),
    ):
        gate = dag.get_task(gate_id)
        assert gate.trigger_rule == TriggerRule.ALL_DONE
        assert any(upstream.startswith(fan_out) for upstream in gate.upstream_task_ids)


def test_a_failure_anywhere_fails_the_run(dag_bag) -> None:  # noqa: ANN001
    from airflow.sdk import TriggerRule

    dag = dag_bag.dags["ledgerlink_reconcile"]
    watcher = dag.get_task("report_failures")
    assert watcher.trigger_rule == TriggerRule.ONE_FAILED
    assert watcher.downstream_task_ids == set()
    upstream = watcher.upstream_task_ids
    assert {
        "extract_qonto",
        "extract_square",
        "extract_quickbooks",
        "score_and_route",
        "plan_delivery",
        "deliver_documents",
    } <= upstream
    assert any(task_id.startswith("dbt_reporting_marts.") for task_id in upstream)


def _models_under(manifest: dict, selectors: list[str]) -> set[str]:
    folders = tuple(selector.removeprefix("path:") + "/" for selector in selectors)
    return {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["original_file_path"].startswith(folders)
    }


def test_each_dbt_model_is_its_own_task_and_each_group_runs_dbt_twice(dag_bag, prepared) -> None:  # noqa: ANN001
    """Every model of the manifest is its own task, which reruns that model alone when cleared from
    the UI; a window builds a group's models in one `dbt build` and tests them in one `dbt test`
    (a dbt invocation's fixed cost, once per model, was most of a window), writing no JSON
    artifacts into the project copy Cosmos deletes afterwards."""
    import json

    from airflow.sdk import TriggerRule
    from cosmos.operators.local import DbtTestLocalOperator
    from cosmos.operators.watcher import DbtConsumerWatcherSensor, DbtProducerWatcherOperator

    from ledgerlink.orchestration.dbt import MATCH_FEATURE_SELECTORS, REPORTING_SELECTORS, manifest_path

    settings, _ = prepared
    manifest = json.loads(manifest_path(settings.dbt_project_dir).read_text())
    dag = dag_bag.dags["ledgerlink_reconcile"]
    for group_id, selectors in (
        ("dbt_match_features", MATCH_FEATURE_SELECTORS),
        ("dbt_reporting_marts", REPORTING_SELECTORS),
    ):
        tasks = [task for task in dag.tasks if task.task_id.startswith(f"{group_id}.")]
        (build,) = [task for task in tasks if isinstance(task, DbtProducerWatcherOperator)]
        (test,) = [task for task in tasks if isinstance(task, DbtTestLocalOperator)]
        model_tasks = [task for task in tasks if isinstance(task, DbtConsumerWatcherSensor)]
        assert {task.task_id for task in model_tasks} == {
            f"{group_id}.{model}_run" for model in _models_under(manifest, selectors)
        }
        # the model tasks start once the build is over, whatever its outcome, and the build is
        # not retried: a model task's retry runs its model itself
        assert build.retries == 0
        first_model_tasks = [task for task in model_tasks if build.task_id in task.upstream_task_ids]
        assert first_model_tasks
        assert all(task.trigger_rule == TriggerRule.ALL_DONE for task in first_model_tasks)
        assert all(
            task.upstream_task_ids <= {t.task_id for t in model_tasks}
            for task in model_tasks
            if task not in first_model_tasks
        )
        assert test.upstream_task_ids and test.upstream_task_ids <= {task.task_id for task in model_tasks}
        for task in (build, test, *model_tasks):
            assert "--no-write-json" in task.dbt_cmd_flags, task.task_id
            assert "--no-send-anonymous-usage-stats" in task.dbt_cmd_flags, task.task_id
