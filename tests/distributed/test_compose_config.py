"""docker-compose.yml is valid with .env.example as its only configuration (``docker compose
config``, no engine needed), has the production shape (Airflow 3 on Celery with Redis, scalable
workers, an SMTP catcher), and says exactly what the README's "Running with docker compose"
section documents: the same services, images, commands and variables."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ledgerlink.settings import REPOSITORY_ROOT

COMPOSE_FILE = REPOSITORY_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPOSITORY_ROOT / ".env.example"
README = REPOSITORY_ROOT / "README.md"
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """A compose CLI: Docker's plugin, or Debian's docker-compose (``make compose-cli`` installs
    it when neither is present)."""
    cli = _compose_cli()
    if cli is None:
        installed = subprocess.run(
            ["make", "compose-cli"], cwd=REPOSITORY_ROOT, capture_output=True, text=True, check=False
        )
        cli = _compose_cli()
        if cli is None:
            pytest.skip(
                "no `docker compose` and `make compose-cli` could not install docker-compose:\n"
                + (installed.stdout + installed.stderr)[-3000:]
            )
    return cli


def _config(compose: list[str], env_file: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, (yaml.safe_load(result.stdout) if result.returncode == 0 else {})


def _unset_variables(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Variables compose reports as unset (it substitutes a blank string and warns)."""
    return set(re.findall(r"(\w+)\W* variable is not set", result.stderr))


def _env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def _readme_section() -> str:
    text = README.read_text()
    start = text.index("## Running with docker compose")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _readme_table(header: str) -> list[list[str]]:
    """The rows of the section's table whose header row starts with ``header``."""
    lines = _readme_section().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def _code(cell: str) -> str | None:
    """The first `code` span of a README cell."""
    match = re.search(r"`([^`]+)`", cell)
    return match.group(1) if match else None


@pytest.fixture(scope="module")
def config(compose: list[str]) -> dict[str, Any]:
    result, parsed = _config(compose, ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert not _unset_variables(result), f".env.example leaves unset: {_unset_variables(result)}"
    return parsed


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The file as written, before variables are substituted (YAML merge keys resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _airflow_services(services: dict[str, Any]) -> dict[str, Any]:
    return {
        name: service for name, service in services.items() if "ledgerlink" in str(service.get("command"))
    }


def test_production_shape(config: dict[str, Any]) -> None:
    services = config["services"]
    airflow = _airflow_services(services)
    commands = {" ".join(service["command"][2:]) for service in airflow.values()}
    assert AIRFLOW_COMMANDS <= commands, f"Airflow services run {sorted(commands)}"
    assert services["postgres"]["image"].startswith("postgres:")
    assert "mailpit" in services["mailpit"]["image"]
    for name, service in airflow.items():
        environment = service["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        broker = urlsplit(environment["AIRFLOW__CELERY__BROKER_URL"])
        assert broker.scheme == "redis" and "redis" in services[broker.hostname]["image"], name
        execution_api = urlsplit(environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert execution_api.hostname == "airflow-api-server" and execution_api.path == "/execution/", name
        database = urlsplit(environment["LEDGERLINK_DATABASE_URL"])
        assert database.hostname == "postgres" and database.password, name
    worker = services["airflow-worker"]
    assert int(worker["deploy"]["replicas"]) == int(_env_file(ENV_EXAMPLE)["AIRFLOW_WORKER_REPLICAS"])
    assert "container_name" not in worker, "a fixed container name cannot scale"
    assert worker["command"][-2:] == ["celery", "worker"]


def test_readme_documents_every_service_image_and_command(config: dict[str, Any]) -> None:
    documented = {_code(row[0]): row for row in _readme_table("| service | image | command |")}
    assert set(documented) == set(config["services"])
    for name, service in config["services"].items():
        _, image, command = documented[name]
        assert _code(image) == service["image"], name
        if "command" in service:
            assert _code(command) == shlex.join(service["command"]), name
        else:
            assert _code(command) is None or not command.startswith("`"), f"{name} runs its image's command"


def test_readme_documents_the_airflow_environment(config: dict[str, Any], raw: dict[str, Any]) -> None:
    documented = {_code(name): _code(value) for name, value in _readme_table("| variable | value |")}
    for name, service in _airflow_services(raw["services"]).items():
        written = {key: str(value) for key, value in service["environment"].items()}
        assert written == documented, f"{name}'s environment differs from the README's table"
    for name, service in _airflow_services(config["services"]).items():
        assert set(service["environment"]) == set(documented), name


def test_env_example_readme_and_compose_name_the_same_variables() -> None:
    example = _env_file(ENV_EXAMPLE)
    documented = {_code(row[0]): row for row in _readme_table("| variable | in `.env.example` |")}
    referenced = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    assert set(example) == set(documented) == referenced
    for name, (_, default, _) in documented.items():
        assert (_code(default) or "") == example[name] or (default == "empty" and example[name] == ""), name


def test_an_env_file_missing_a_variable_is_caught(compose: list[str], tmp_path: Path) -> None:
    """Bad input: the checks above would notice an .env that leaves a variable out."""
    partial = tmp_path / ".env"
    partial.write_text(
        "\n".join(
            line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("POSTGRES_PASSWORD=")
        )
    )
    result, _ = _config(compose, partial)
    assert "POSTGRES_PASSWORD" in _unset_variables(result), result.stderr


def test_region_variables_reach_every_airflow_process(compose: list[str], tmp_path: Path) -> None:
    from ledgerlink.warehouse.regions import configured_regions

    url = "postgresql://ledgerlink:secret@pg-eu.internal:5432/ledgerlink"
    env_file = tmp_path / ".env"
    env_file.write_text(
        ENV_EXAMPLE.read_text().replace("LEDGERLINK_REGION_EU_URL=\n", f"LEDGERLINK_REGION_EU_URL={url}\n")
    )
    result, parsed = _config(compose, env_file)
    assert result.returncode == 0, result.stderr
    for name, service in _airflow_services(parsed["services"]).items():
        regions = configured_regions(environ={k: str(v or "") for k, v in service["environment"].items()})
        assert {region: r.url for region, r in regions.items()} == {"eu": url}, name
    # .env.example as it is: no region, so the configuration database is the one region
    _, example = _config(compose, ENV_EXAMPLE)
    for name, service in _airflow_services(example["services"]).items():
        environment = {k: str(v or "") for k, v in service["environment"].items()}
        assert list(configured_regions(environ=environment)) == ["default"], name
