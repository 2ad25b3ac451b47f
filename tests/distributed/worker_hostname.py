"""The hostname a test's Celery worker reports to Airflow, set as ``[core] hostname_callable``.

Two workers on one machine share its fully qualified name, so each test worker is started with
its own ``LEDGERLINK_TEST_WORKER_NAME``; every task process it forks inherits that name and
records it in ``task_instance.hostname``. (In docker compose each worker is its own container
with its own hostname, and Airflow's default callable tells them apart.)"""

from __future__ import annotations

import os

WORKER_NAME_VARIABLE = "LEDGERLINK_TEST_WORKER_NAME"


def worker_hostname() -> str:
    return os.environ[WORKER_NAME_VARIABLE]
