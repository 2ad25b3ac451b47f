"""``ledgerlink workspace`` against the session's warehouse: settings saved and listed, bad
settings refused with every reason and nothing saved, disable keeps the data and drops the
workspace from the DAG's fan-out."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ledgerlink.cli.main import cli
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import active_workspace_ids, load_workspace


def _invoke(*args: str):  # noqa: ANN202
    return CliRunner().invoke(cli, ["workspace", *args], catch_exceptions=False)


def test_add_list_disable_enable(warehouse) -> None:  # noqa: ANN001
    added = _invoke(
        "add",
        "cli-ws",
        "--name",
        "Boulangerie Zoë SARL",
        "--email-in",
        "zoe@qbodocs.com",
        "--owner-email",
        "owner@zoe.example",
        "--home-currency",
        "CHF",
        "--auto-link-threshold",
        "0.9",
        "--review-threshold",
        "0.6",
    )
    assert added.exit_code == 0, added.output
    try:
        with connect(warehouse) as conn:
            saved = load_workspace(conn, "cli-ws")
            assert (saved.display_name, saved.home_currency, str(saved.auto_link_threshold)) == (
                "Boulangerie Zoë SARL",
                "CHF",
                "0.9",
            )
            assert "cli-ws" in active_workspace_ids(conn)
        listed = [json.loads(line) for line in _invoke("list", "--json").output.splitlines()]
        assert {"workspace_id": "cli-ws", "is_active": True}.items() <= next(
            item for item in listed if item["workspace_id"] == "cli-ws"
        ).items()
        assert "cli-ws" in _invoke("list").output

        assert _invoke("disable", "cli-ws").exit_code == 0
        with connect(warehouse) as conn:
            assert "cli-ws" not in active_workspace_ids(conn)
            assert load_workspace(conn, "cli-ws").display_name == "Boulangerie Zoë SARL"
        assert "disabled" in _invoke("list").output
        assert _invoke("enable", "cli-ws").exit_code == 0
        with connect(warehouse) as conn:
            assert "cli-ws" in active_workspace_ids(conn)
    finally:
        _invoke("disable", "cli-ws")


def test_bad_settings_are_refused_with_every_reason_and_nothing_is_saved(warehouse) -> None:  # noqa: ANN001
    result = _invoke(
        "add",
        "Bad WS!",
        "--name",
        "x",
        "--email-in",
        "books@gmail.com",
        "--home-currency",
        "euro",
        "--auto-link-threshold",
        "0.5",
        "--review-threshold",
        "0.7",
        "--owner-email",
        "nobody",
    )
    assert result.exit_code == 2
    for reason in ("workspace id", "email-in address", "home currency", "owner email", "review threshold"):
        assert reason in result.output
    with connect(warehouse) as conn:
        assert (
            conn.execute("select count(*) from ops.workspaces where workspace_id = 'Bad WS!'").fetchone()[0]
            == 0
        )


def test_disabling_an_unknown_workspace_says_so(warehouse) -> None:  # noqa: ANN001
    result = _invoke("disable", "no-such-ws")
    assert result.exit_code == 2
    assert "no workspace 'no-such-ws'" in result.output
