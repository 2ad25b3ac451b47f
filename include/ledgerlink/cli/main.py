"""``ledgerlink``: run the pipeline, manage the embedded warehouse, and reach Airflow, dbt and the
sandbox with the right environment. Airflow is never imported here: commands that need it run it
as a subprocess with the environment set by :mod:`ledgerlink.cli.environment`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from ledgerlink.settings import load_settings


@click.group()
def cli() -> None:
    """ledgerlink reconciles Qonto and Square records with QuickBooks Online."""


@cli.command()
@click.option("--seed", default=7, show_default=True, help="Seed of the sandbox data set.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def run(seed: int, as_json: bool) -> None:
    """Run ledgerlink_reconcile once on the embedded defaults against the sandbox."""
    from ledgerlink.cli.run import run_pipeline

    try:
        summary = run_pipeline(load_settings(), seed)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(summary.as_json()) if as_json else summary.as_text())


@cli.command()
def prepare() -> None:
    """Start the warehouse, migrate it and Airflow's metadata, and build the dbt manifest."""
    from ledgerlink.cli.setup import prepare as prepare_machine

    settings, address = prepare_machine(load_settings())
    click.echo(f"warehouse ready at {address.host}:{address.port}/{address.warehouse_database}")
    click.echo(f"AIRFLOW_HOME={settings.airflow_home}")


@cli.group()
def delivery() -> None:
    """Deliveries to the QuickBooks email-in."""


@delivery.command("retry")
@click.option("--workspace", "workspace_id", required=True)
@click.option("--record", "source_record", help="source:record_id, e.g. square:PAY123")
@click.option("--outbox-id", type=int)
@click.option("--actor", default=lambda: os.environ.get("USER", "cli"), show_default="$USER")
def delivery_retry(workspace_id: str, source_record: str | None, outbox_id: int | None, actor: str) -> None:
    """Queue one rejected or failed delivery again after its cause was fixed."""
    from ledgerlink.delivery.retry import DeliveryNotFound, retry_delivery
    from ledgerlink.warehouse import connect_for_workspace

    try:
        with connect_for_workspace(workspace_id) as conn:
            request = retry_delivery(
                conn, workspace_id, actor=actor, outbox_id=outbox_id, source_record=source_record
            )
    except (DeliveryNotFound, LookupError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    record = f"{request.source}:{request.source_record_id}"
    if request.queued:
        click.echo(
            f"queued delivery {request.outbox_id} of {record} again (was {request.previous_status}: "
            f"{request.previous_reason})"
        )
    else:
        click.echo(f"delivery {request.outbox_id} of {record} is {request.previous_status}; nothing to retry")


@cli.group()
def db() -> None:
    """The embedded PostgreSQL server (ignored when LEDGERLINK_DATABASE_URL is set)."""


@db.command("start")
def db_start() -> None:
    from ledgerlink.warehouse import resolve_server

    address = resolve_server(load_settings())
    click.echo(f"running: {address.conninfo()}")


@db.command("stop")
def db_stop() -> None:
    from ledgerlink.warehouse.embedded import stop_embedded_server

    settings = load_settings()
    if not settings.uses_embedded_database:
        raise click.ClickException("LEDGERLINK_DATABASE_URL is set: ledgerlink does not manage that server")
    click.echo("stopped" if stop_embedded_server(settings.postgres_dir) else "was not running")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def airflow(args: tuple[str, ...]) -> None:
    """Run the ``airflow`` command with ledgerlink's environment, e.g. ``ledgerlink airflow standalone``."""
    _exec_with_environment("airflow", args)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dbt(args: tuple[str, ...]) -> None:
    """Run ``dbt`` in the project with the warehouse's profile, e.g. ``ledgerlink dbt build``."""
    settings = load_settings()
    _exec_with_environment("dbt", args, cwd=str(settings.dbt_project_dir))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sqlfluff(args: tuple[str, ...]) -> None:
    """Run ``sqlfluff`` with the warehouse's profile, which its dbt templater compiles models
    against, e.g. ``ledgerlink sqlfluff lint dbt_project/models``."""
    _exec_with_environment("sqlfluff", args)


def _exec_with_environment(executable: str, args: tuple[str, ...], cwd: str | None = None) -> None:
    from ledgerlink.cli.environment import airflow_environment
    from ledgerlink.cli.setup import venv_executable
    from ledgerlink.warehouse import resolve_server

    settings = load_settings()
    environment = {**os.environ, **airflow_environment(settings, resolve_server(settings))}
    completed = subprocess.run([venv_executable(executable), *args], env=environment, cwd=cwd, check=False)
    sys.exit(completed.returncode)


def _register_commands() -> None:
    from ledgerlink.cli.benchmark import benchmark
    from ledgerlink.cli.connect import connect
    from ledgerlink.cli.evaluate import evaluate
    from ledgerlink.cli.sandbox import sandbox
    from ledgerlink.cli.workspace import workspace

    cli.add_command(sandbox)
    cli.add_command(evaluate)
    cli.add_command(workspace)
    cli.add_command(benchmark)
    cli.add_command(connect)


_register_commands()
