"""Fixtures of the page tests; they live in ``web_world`` so the tests can import its helpers."""

from web_world import airflow_server, artifacts, oauth_sandbox, world  # noqa: F401
