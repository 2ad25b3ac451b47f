"""Field mappings: defaults, overrides, ignored and computed fields, versions that apply only to
records reconciled after their validity start, and computed expressions that cannot escape
their sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from delivery_rig import DeliveryRig, decide, new_workspace, outbox_rows, square_record

from ledgerlink.delivery.mappings import DEFAULT_FIELDS, MappingError, evaluate, save_mapping_version
from ledgerlink.delivery.sender import deliver_pending

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SPEC_V1 = {
    "overrides": {"tax": "TVA 20%"},
    "ignored": ["reference"],
    "computed": {
        "gl_code": "'6064' if counterparty.startswith('Boulangerie') else '6000'",
        "tax_bucket": "'standard' if currency == 'EUR' else 'foreign'",
        "project_tag": "'PRJ-' ~ (matched_id | string)",
    },
}


def _decision_version(conn: psycopg.Connection, decision_id: int) -> int | None:
    row = conn.execute(
        "select mapping_version from ops.routing_decisions where decision_id = %s", (decision_id,)
    )
    return row.fetchone()[0]  # type: ignore[index]


def test_a_mapping_change_applies_only_to_records_reconciled_after_it(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    ws = rig.workspace
    before = decide(conn, ws, square_record("M1"), decided_at=T0)
    conn.commit()
    assert deliver_pending(conn, ws.workspace_id, rig.endpoint(), rig.blobs, "run-1")["sent"] == 1

    assert save_mapping_version(conn, ws.workspace_id, SPEC_V1, T0 + timedelta(days=1), "ana") == 1
    conn.commit()
    after = decide(conn, ws, square_record("M2"), decided_at=T0 + timedelta(days=2))
    conn.commit()
    first, second = outbox_rows(conn, ws.workspace_id)

    assert first["mapping_version"] == 0 and _decision_version(conn, before) == 0
    assert set(first["document"]["fields"]) == set(DEFAULT_FIELDS)
    assert second["mapping_version"] == 1 and _decision_version(conn, after) == 1
    assert second["document"]["fields"] == {
        "counterparty": "Boulangerie Marchand",
        "amount": "42.50",
        "currency": "EUR",
        "tax": "TVA 20%",
        "gl_code": "6064",
        "tax_bucket": "standard",
        "project_tag": "PRJ-1042",
    }

    # A later version, and a replay of the first record: what was delivered stays as it stands.
    save_mapping_version(conn, ws.workspace_id, {"ignored": ["tax"]}, T0 + timedelta(days=3), "ana")
    decide(conn, ws, square_record("M1"), decided_at=T0 + timedelta(days=4))
    conn.commit()
    rows = outbox_rows(conn, ws.workspace_id)
    assert [row["outbox_id"] for row in rows] == [first["outbox_id"], second["outbox_id"]]
    assert rows[0]["document"] == first["document"] and rows[0]["status"] == "sent"
    assert rows[1]["document"] == second["document"]
    assert _decision_version(conn, before) == 0
    later = decide(conn, ws, square_record("M3"), decided_at=T0 + timedelta(days=5))
    conn.commit()
    assert (
        outbox_rows(conn, ws.workspace_id)[-1]["mapping_version"] == 2 and _decision_version(conn, later) == 2
    )


def test_the_mapping_version_is_on_the_delivered_document(conn: psycopg.Connection, rig: DeliveryRig) -> None:
    import email
    from io import BytesIO

    from pypdf import PdfReader

    save_mapping_version(conn, rig.workspace.workspace_id, SPEC_V1, T0, "ana")
    decide(conn, rig.workspace, square_record("M4"), decided_at=T0 + timedelta(hours=1))
    conn.commit()
    deliver_pending(conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "run-1")
    [path] = rig.email_in.mailbox.messages()
    message = email.message_from_bytes(path.read_bytes())
    assert message["X-Ledgerlink-Mapping-Version"] == "1"
    [pdf] = [part.get_payload(decode=True) for part in message.walk() if part.get_filename()]
    text = PdfReader(BytesIO(pdf)).pages[0].extract_text()
    assert "square:M4" in text and "mapping version: 1" in text and "6064" in text


INJECTIONS = [
    "''.__class__.__mro__[1].__subclasses__()",
    "counterparty.__class__.__base__",
    "(1).__class__",
    "lipsum.__globals__['os'].popen('touch {marker}').read()",
    "cycler.__init__.__globals__.os.system('touch {marker}')",
    "namespace.__init__.__globals__",
    "range(10**9) | list",
    "'x' * 10**8",
    "9 ** 9 ** 9",
    "'{{0.__class__.__mro__}}'.format(1)",
    "{{% include '/etc/passwd' %}}",
    "config",
    "self.__init__.__globals__",
    "x" * 600,
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_computed_values_cannot_escape_their_sandbox(
    conn: psycopg.Connection, tmp_path: Path, template: str
) -> None:
    marker = tmp_path / "pwned"
    expression = template.format(marker=marker)
    workspace = new_workspace(conn)
    with pytest.raises(MappingError):
        save_mapping_version(
            conn, workspace.workspace_id, {"computed": {"gl_code": expression}}, T0, "mallory"
        )
    conn.rollback()
    values = {"counterparty": "Acme", "currency": "EUR", "matched_id": "1"}
    assert evaluate(expression, values) is None or isinstance(evaluate(expression, values), str | int)
    assert not marker.exists()
    assert conn.execute(
        "select count(*) from ops.field_mappings where workspace_id = %s", (workspace.workspace_id,)
    ).fetchone() == (0,)


def test_unknown_mapping_keys_are_refused(conn: psycopg.Connection) -> None:
    workspace = new_workspace(conn)
    with pytest.raises(MappingError, match="unknown mapping keys"):
        save_mapping_version(
            conn, workspace.workspace_id, {"sql": "drop table ops.workspaces"}, T0, "mallory"
        )
