# Two commands on a fresh machine: `make run` (the main job on the embedded defaults) and
# `make test`. Each creates the environment it needs on first use: a bootstrap venv holding uv,
# then .venv from the exact versions in uv.lock.

PYTHON ?= python3
UV_VERSION := 0.13.8
BOOTSTRAP := .state/bootstrap
UV := $(BOOTSTRAP)/bin/uv
VENV := .venv
SYNCED := $(VENV)/.synced

.PHONY: run test test-backfill lint env airflow compose-cli browser clean-state

run: $(SYNCED)
	$(VENV)/bin/ledgerlink run

test: $(SYNCED)
	$(VENV)/bin/pytest -n 2 --dist loadfile

# Backfills the DAG twice over a past window with a real scheduler (about 20 minutes): asked for,
# not part of `make test`.
test-backfill: $(SYNCED)
	LEDGERLINK_RUN_BACKFILL_TEST=1 $(VENV)/bin/pytest tests/test_backfill_idempotency.py

lint: $(SYNCED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ledgerlink dbt parse --quiet
	$(VENV)/bin/ledgerlink sqlfluff lint dbt_project/models

airflow: $(SYNCED)
	$(VENV)/bin/ledgerlink airflow standalone

env: $(SYNCED)

# Debian packages some tests need. One apt-get at a time on the machine: the browser and compose
# tests install theirs from two test workers at once, and dpkg's lock refuses a second at once.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_GET := $(SUDO) flock /tmp/ledgerlink-apt-get.lock apt-get -o DPkg::Lock::Timeout=600

# The browser tests drive Debian's Chromium through Playwright; Playwright never downloads one.
CHROMIUM ?= /usr/bin/chromium
browser: $(CHROMIUM)

$(CHROMIUM):
	$(APT_GET) install -y chromium || ($(APT_GET) update && $(APT_GET) install -y chromium)

$(UV):
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet uv==$(UV_VERSION)

$(SYNCED): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --compile-bytecode
	touch $@

# A compose CLI for `docker compose config` (the compose test; validating needs no engine). Docker's
# compose plugin when present, else Debian's docker-compose package.
compose-cli:
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || \
		{ $(APT_GET) update -qq && $(APT_GET) install -y -qq docker-compose; }

# Stops the embedded server and deletes all local state (warehouse data, Airflow home, mailbox).
clean-state:
	-$(VENV)/bin/ledgerlink db stop
	rm -rf .state/postgres .state/airflow .state/blobs .state/mailbox .state/fixtures .state/logs
