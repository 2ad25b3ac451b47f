-- Queuing a document first looks for a distinct queued record it resembles (same source, amount
-- and currency; see delivery.outbox). Without this index every auto-link scanned the workspace's
-- whole outbox, so a first sync of n auto-links cost n² (about 14 of a 15-minute bank-to-ledger
-- evaluation went there).
create index delivery_outbox_look_alike on ops.delivery_outbox (
    workspace_id, source, ((document ->> 'amount_minor')::bigint), (document ->> 'currency')
);
