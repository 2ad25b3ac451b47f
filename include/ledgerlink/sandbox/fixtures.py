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
import threading
import weakref
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, overload

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


#: One JSON record, as the sandboxes read it: a ``list`` in memory, or a :class:`RecordFile` on disk.
Records = Sequence[dict[str, Any]]


class _RecordSequence(Sequence[dict[str, Any]]):
    """A read-only list of records that compares equal to a list of the same records. A subclass
    says how many records it holds (``__len__``) and how to read the one at a position
    (``_record``); indexing, slicing and iterating are the same for every kind."""

    __hash__ = None  # type: ignore[assignment]

    def _record(self, position: int) -> dict[str, Any]:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._record(position) for position in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._record(index)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._record(position) for position in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(
            mine == theirs for mine, theirs in zip(self, other, strict=True)
        )


class RecordFile(_RecordSequence):
    """The records of one listing in a fixture file, left on disk: it holds where each record's
    line starts (8 bytes a record) and parses a record when it is asked for, so a sandbox serving
    a million payments does not hold a million dicts. Each access returns a fresh dict.

    Only the layout :func:`write_json_streaming` writes (one compact record a line) is read this
    way; see :func:`read_listing`."""

    def __init__(self, path: Path, starts: array[int], ends: array[int]) -> None:
        self.path = path
        self._starts = starts
        self._ends = ends
        # pread needs no shared file position, so the servers' threads read concurrently
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return len(self._starts)

    def _record(self, position: int) -> dict[str, Any]:
        start = self._starts[position]
        record: dict[str, Any] = json.loads(os.pread(self._fd, self._ends[position] - start, start))
        return record


class Selection(_RecordSequence):
    """Some records of a listing, in a chosen order, held as positions into it (a list or a
    :class:`RecordFile`): what a sandbox keeps of a query's answer between its pages."""

    def __init__(self, records: Records, positions: Sequence[int]) -> None:
        self.records = records
        self.positions = positions

    def __len__(self) -> int:
        return len(self.positions)

    def _record(self, position: int) -> dict[str, Any]:
        return self.records[self.positions[position]]


def read_listing(path: Path, *keys: str) -> Records:
    """The list at ``keys`` (e.g. ``"QueryResponse", "Invoice"``) in a fixture file, ``[]`` when a
    key is absent. A file in :func:`write_json_streaming`'s layout stays on disk (a
    :class:`RecordFile`); any other layout, a hand-written file's, is loaded whole."""
    starts: array[int] = array("q")
    ends: array[int] = array("q")
    opening = f"{json.dumps(keys[-1], ensure_ascii=False)}: [".encode()
    offset = 0
    state = "before"
    with path.open("rb") as stream:
        for line in stream:
            length = len(line)
            stripped = line.strip()
            if state == "before":
                if stripped == opening:
                    state = "records"
            elif state == "records":
                if stripped in (b"]", b"],"):
                    state = "after"
                    break
                record = stripped.removesuffix(b",")
                if not (record.startswith(b"{") and record.endswith(b"}")):
                    state = "other"  # a pretty-printed record: not the streamed layout
                    break
                start = offset + line.index(b"{")
                starts.append(start)
                ends.append(start + len(record))
            offset += length
    if state != "after" or not starts:
        document = _read_json(path)
        for key in keys:
            document = document.get(key, {}) if isinstance(document, dict) else {}
        return document if isinstance(document, list) else []
    return RecordFile(path, starts, ends)


class _JsonFile(Mapping[str, Any]):
    """A JSON object file read the first time it is looked into (the ground truth of a million
    payments is for the evaluation, not for the servers). It is opened at once, so it can still be
    read after its folder is removed, as the listings can."""

    def __init__(self, path: Path) -> None:
        self._stream: IO[bytes] | None = path.open("rb") if path.exists() else None
        self._document: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None:
                if self._stream is None:
                    self._document = {}
                else:
                    with self._stream:
                        self._document = json.load(self._stream)
            return self._document

    def __getitem__(self, key: str) -> Any:
        return self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


class _AttachmentFolder(Mapping[str, dict[str, Any]]):
    """The Qonto attachments' metadata (``<id>.json`` beside each ``<id>.pdf``), read when one is
    asked for: a big fixture folder holds a hundred thousand of them."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def __getitem__(self, attachment_id: str) -> dict[str, Any]:
        path = self._folder / f"{attachment_id}.json"
        if "/" in attachment_id or attachment_id.startswith(".") or not path.is_file():
            raise KeyError(attachment_id)
        attachment: dict[str, Any] = _read_json(path)["attachment"]
        return attachment

    def __iter__(self) -> Iterator[str]:
        if not self._folder.is_dir():
            return iter(())
        return iter(sorted(path.stem for path in self._folder.glob("*.json")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class QontoOAuthClient:
    """OAuth client credentials for the sandbox's Qonto token endpoint, derived from the manifest so
    the manifest keeps its documented keys and the same fixtures always give the same credentials."""

    client_id: str
    client_secret: str
    refresh_token: str


@dataclass(frozen=True)
class Fixtures:
    """A loaded fixture directory: the manifest, every record, and where the attachment files are.
    The listings are sequences of records (a generated folder's are read from disk when indexed,
    see :class:`RecordFile`); each is read-only."""

    root: Path
    manifest: dict[str, Any]
    qonto_supplier_invoices: Records
    qonto_attachments: Mapping[str, dict[str, Any]]
    square_payments: Records
    square_customers: Records
    square_locations: Records
    quickbooks: dict[str, Records]
    ground_truth: Mapping[str, Any]
    square_refunds: Records = dataclasses.field(default_factory=list)

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
    (or by hand in the same layout). Raises ``FileNotFoundError`` naming the first missing file.

    The generator's listings stay on disk and are read record by record (:func:`read_listing`);
    the attachments' metadata and the ground truth are read when first looked into."""
    root = Path(root).resolve()
    manifest = _read_json(root / "manifest.json")
    invoices = read_listing(root / "qonto" / "supplier_invoices.json", "supplier_invoices")
    quickbooks = {
        entity: read_listing(root / "quickbooks" / f"{entity}.json", "QueryResponse", entity)
        for entity in QUICKBOOKS_ENTITIES
    }
    refunds_path = root / "square" / "refunds.json"
    return Fixtures(
        root=root,
        manifest=manifest,
        qonto_supplier_invoices=invoices,
        qonto_attachments=_AttachmentFolder(root / "qonto" / "attachments"),
        square_payments=read_listing(root / "square" / "payments.json", "payments"),
        square_customers=read_listing(root / "square" / "customers.json", "customers"),
        square_locations=read_listing(root / "square" / "locations.json", "locations"),
        quickbooks=quickbooks,
        ground_truth=_JsonFile(root / "ground_truth.json"),
        # older fixture folders, and hand-written ones, may have no refunds
        square_refunds=read_listing(refunds_path, "refunds") if refunds_path.exists() else [],
    )
