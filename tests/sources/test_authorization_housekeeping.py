"""Old OAuth authorization requests do not pile up: every DAG run's ``prepare_warehouse`` clears
the PKCE verifier of requests past their deadline and deletes those past it for a month, while a
request still in flight is left whole and can finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledgerlink.orchestration.operators import PrepareWarehouseOperator
from ledgerlink.sources.authorization import (
    STATE_LIFETIME,
    STATE_RETENTION,
    begin_authorization,
    claim_authorization,
)
from ledgerlink.warehouse import connect


def _states(conn, workspace_id: str) -> dict[str, tuple[bool, str | None]]:  # noqa: ANN001
    """Each remembered state of the workspace: whether it still holds a verifier, and its outcome."""
    rows = conn.execute(
        "select state, code_verifier is not null, outcome from ops.oauth_states where workspace_id = %s",
        (workspace_id,),
    ).fetchall()
    return {state: (has_verifier, outcome) for state, has_verifier, outcome in rows}


def test_prepare_warehouse_forgets_old_requests_and_keeps_those_in_flight(
    warehouse, new_workspace, qonto_oauth
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    now = datetime.now(UTC)

    def started(at: datetime) -> str:
        return begin_authorization(
            conn, qonto_oauth, workspace_id=workspace_id, source="qonto",
            redirect_uri="http://127.0.0.1:1/callback", requested_by="alice", now=at,
        ).state  # fmt: skip

    with connect(warehouse) as conn:
        in_flight = started(now)
        unanswered = started(now - STATE_LIFETIME - timedelta(hours=1))
        month_old = started(now - STATE_LIFETIME - STATE_RETENTION - timedelta(minutes=1))
        answered = started(now - timedelta(minutes=1))
        claim_authorization(conn, answered, requested_by="alice", now=now)
        assert _states(conn, workspace_id)[answered] == (False, "claimed"), (
            "a used verifier is cleared at once"
        )

    PrepareWarehouseOperator(task_id="prepare_warehouse").execute({})

    with connect(warehouse) as conn:
        states = _states(conn, workspace_id)
        assert month_old not in states, "a month past its deadline, a request is deleted"
        assert set(states) == {in_flight, unanswered, answered}
        assert states[unanswered] == (False, None), "expired unanswered: on record, without its verifier"
        assert states[in_flight] == (True, None)
        finishing = claim_authorization(conn, in_flight, requested_by="alice", now=datetime.now(UTC))
    assert finishing.code_verifier, "the request in flight still finishes with its PKCE verifier"
