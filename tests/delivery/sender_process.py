"""The sender (or the scorer's enqueue) as its own process, for the crash tests to SIGKILL.

``python sender_process.py enqueue <workspace_id> <record_id>``: decides and queues the record
in one transaction, prints ``enqueued`` and waits without committing.
``python sender_process.py deliver <workspace_id> <smtp json>``: runs the sender, printing its
database backend pid first."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from delivery_rig import decide, square_record

from ledgerlink.blobstore import BlobStore
from ledgerlink.delivery.sender import RetryPolicy, deliver_pending
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import load_workspace


def main(mode: str, workspace_id: str, argument: str) -> None:
    with connect() as conn:
        print(f"backend {conn.info.backend_pid}", flush=True)
        if mode == "enqueue":
            decide(conn, load_workspace(conn, workspace_id), square_record(argument))
            print("enqueued", flush=True)
            time.sleep(120)
            return
        options = json.loads(argument)
        endpoint = SmtpEndpoint(**options["smtp"])
        counts = deliver_pending(
            conn,
            workspace_id,
            endpoint,
            BlobStore(Path(options["blobs"])),
            "crash-run",
            retry=RetryPolicy(max_attempts=1),
        )
        print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
