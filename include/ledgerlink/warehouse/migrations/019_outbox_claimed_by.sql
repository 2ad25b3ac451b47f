-- Parallel delivery: several senders may work on one workspace's outbox at once (one per shard,
-- each a mapped Airflow task), so a row in `sending` no longer means "interrupted". Each claim
-- records the PostgreSQL backend of the sender that holds it; that sender holds an advisory lock
-- keyed by its backend pid for as long as it runs (ledgerlink.delivery.sender). A row is
-- recovered as interrupted only when no live session holds its claimer's lock. Rows claimed
-- before this migration carry null: no sender of theirs can still be alive.
alter table ops.delivery_outbox add column claimed_by_backend integer;
