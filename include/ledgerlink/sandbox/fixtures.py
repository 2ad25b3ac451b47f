"""Reading and writing a sandbox fixture directory.

The directory layout is a contract shared with the rest of ledgerlink (see the package docstring):
every file holds what the real API would answer, so the servers only filter, sort and page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

QUICKBOOKS_ENTITIES = ("Vendor", "Customer", "Invoice", "Account")


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as stable, human-readable JSON (same input, same bytes), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


#: Stands in for the streamed part while the envelope around it is laid out.
_STREAMED = "\u0000streamed\u0000"

# The C encoder (no indent) is an order of magnitude faster than the indenting one.
_record_encoder = json.JSONEncoder(ensure_ascii=False)


@contextmanager
def _atomic_text(path: Path) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_streaming(path: Path, envelope: Any, records: Iterable[Any]) -> int:
    """Write ``envelope`` with its one ``STREAMED_LIST`` (or ``STREAMED_OBJECT``) replaced by
    ``records``, one compact record a line, without holding them; return how many were written.

    ``records`` are values for a list, or ``(key, value)`` pairs for an object. The envelope is laid
    out as :func:`write_json` lays it out; same records, same bytes; written atomically.
    """
    layout = json.dumps(envelope, indent=2, ensure_ascii=False)
    escaped = json.dumps(_STREAMED)
    as_object = f"{escaped}: {escaped}" in layout
    head, tail = layout.split(f"{escaped}: {escaped}" if as_object else escaped)
    head, indent = head.rsplit("\n", 1)
    encode = _record_encoder.encode
    written = 0
    with _atomic_text(path) as stream:
        stream.write(head)
        for record in records:
            line = f"{encode(record[0])}: {encode(record[1])}" if as_object else encode(record)
            stream.write(("\n" if written == 0 else ",\n") + indent + line)
            written += 1
        stream.write(tail + "\n")
    return written


#: Put it where a listing goes: ``{"payments": STREAMED_LIST}`` or ``{"square": STREAMED_OBJECT}``.
STREAMED_LIST = [_STREAMED]
STREAMED_OBJECT = {_STREAMED: _STREAMED}


def write_bytes_atomically(path: Path, content: bytes) -> None:
    """Write through a temporary file in the same folder and rename it, so a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return json.load(stream)


@dataclass(frozen=True)
class QontoOAuthClient:
    """OAuth client credentials for the sandbox's Qonto token endpoint, derived from the manifest so
    the manifest keeps its documented keys and the same fixtures always give the same credentials."""

    client_id: str
    client_secret: str
    refresh_token: str


@dataclass(frozen=True)
class Fixtures:
    """A loaded fixture directory: the manifest, every record, and where the attachment files are."""

    root: Path
    manifest: dict[str, Any]
    qonto_supplier_invoices: list[dict[str, Any]]
    qonto_attachments: dict[str, dict[str, Any]]
    square_payments: list[dict[str, Any]]
    square_customers: list[dict[str, Any]]
    square_locations: list[dict[str, Any]]
    quickbooks: dict[str, list[dict[str, Any]]]
    ground_truth: dict[str, Any]
    square_refunds: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def workspace_id(self) -> str:
        return str(self.manifest["workspace_id"])

    def access_token(self, service: str) -> str:
        return str(self.manifest["access_tokens"][service])

    @property
    def quickbooks_realm_id(self) -> str:
        return str(self.manifest["quickbooks_realm_id"])

    @property
    def square_location_id(self) -> str:
        return str(self.manifest["square_location_id"])

    @property
    def email_in_address(self) -> str:
        return str(self.manifest["email_in_address"])

    def attachment_file(self, attachment_id: str) -> Path:
        return self.root / "qonto" / "attachments" / f"{attachment_id}.pdf"

    @property
    def qonto_oauth_client(self) -> QontoOAuthClient:
        def derive(label: str) -> str:
            material = f"{self.access_token('qonto')}:{label}".encode()
            return hashlib.sha256(material).hexdigest()

        return QontoOAuthClient(
            client_id=f"sandbox-{derive('client_id')[:16]}",
            client_secret=derive("client_secret")[:40],
            refresh_token=f"ory_rt_{derive('refresh_token')[:43]}",
        )


def load_fixtures(root: Path) -> Fixtures:
    """Load a fixture directory written by :func:`ledgerlink.sandbox.generator.generate_fixtures`
    (or by hand in the same layout). Raises ``FileNotFoundError`` naming the first missing file."""
    root = Path(root).resolve()
    manifest = _read_json(root / "manifest.json")
    invoices = _read_json(root / "qonto" / "supplier_invoices.json")["supplier_invoices"]
    attachments: dict[str, dict[str, Any]] = {}
    attachment_dir = root / "qonto" / "attachments"
    if attachment_dir.is_dir():
        for path in sorted(attachment_dir.glob("*.json")):
            attachment = _read_json(path)["attachment"]
            attachments[str(attachment["id"])] = attachment
    quickbooks = {
        entity: _read_json(root / "quickbooks" / f"{entity}.json")["QueryResponse"].get(entity, [])
        for entity in QUICKBOOKS_ENTITIES
    }
    ground_truth_path = root / "ground_truth.json"
    refunds_path = root / "square" / "refunds.json"
    return Fixtures(
        root=root,
        manifest=manifest,
        qonto_supplier_invoices=invoices,
        qonto_attachments=attachments,
        square_payments=_read_json(root / "square" / "payments.json").get("payments", []),
        square_customers=_read_json(root / "square" / "customers.json").get("customers", []),
        square_locations=_read_json(root / "square" / "locations.json").get("locations", []),
        quickbooks=quickbooks,
        ground_truth=_read_json(ground_truth_path) if ground_truth_path.exists() else {},
        # older fixture folders, and hand-written ones, may have no refunds
        square_refunds=_read_json(refunds_path).get("refunds", []) if refunds_path.exists() else [],
    )
