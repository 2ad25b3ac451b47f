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


def test_members_are_added_listed_and_removed(warehouse) -> None:  # noqa: ANN001
    assert _invoke("add", "cli-members", "--name", "Members Co", "--email-in", "m@qbodocs.com").exit_code == 0
    try:
        assert "no members" in _invoke("member", "list", "cli-members").output
        added = _invoke("member", "add", "cli-members", "carol")
        assert added.exit_code == 0 and "carol is now a member of cli-members" in added.output
        assert "was already" in _invoke("member", "add", "cli-members", "carol").output
        assert _invoke("member", "add", "cli-members", "dave").exit_code == 0
        listed = _invoke("member", "list", "cli-members").output.splitlines()
        assert [line.split()[0] for line in listed] == ["carol", "dave"]
        removed = _invoke("member", "remove", "cli-members", "carol")
        assert removed.exit_code == 0 and "no longer a member" in removed.output
        again = _invoke("member", "remove", "cli-members", "carol")
        assert again.exit_code == 2 and "carol is not a member of cli-members" in again.output
        unknown = _invoke("member", "add", "no-such-ws", "carol")
        assert unknown.exit_code == 2 and "no workspace 'no-such-ws'" in unknown.output
        blank = _invoke("member", "add", "cli-members", " ")
        assert blank.exit_code == 2 and "username" in blank.output
        with connect(warehouse) as conn:
            members = conn.execute(
                "select username from ops.workspace_members where workspace_id = 'cli-members'"
            ).fetchall()
        assert members == [("dave",)]
    finally:
        _invoke("disable", "cli-members")


def test_changed_thresholds_become_a_new_version(warehouse) -> None:  # noqa: ANN001
    common = ("--name", "Versions Co", "--email-in", "v@qbodocs.com")
    assert _invoke("add", "cli-versions", *common, "--auto-link-threshold", "0.9").exit_code == 0
    assert _invoke("add", "cli-versions", *common, "--auto-link-threshold", "0.9").exit_code == 0  # same
    assert _invoke("add", "cli-versions", *common, "--auto-link-threshold", "0.95").exit_code == 0
    try:
        with connect(warehouse) as conn:
            versions = conn.execute(
                "select threshold_version, auto_link_threshold::text from ops.threshold_versions"
                " where workspace_id = 'cli-versions' order by threshold_version"
            ).fetchall()
        assert versions == [(1, "0.9"), (2, "0.95")]
    finally:
        _invoke("disable", "cli-versions")
