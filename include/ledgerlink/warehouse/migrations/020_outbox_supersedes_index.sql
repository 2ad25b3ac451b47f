-- ops.delivery_outbox.supersedes_outbox_id refers to the outbox itself, and PostgreSQL indexes
-- the referenced key, not the referring one: deleting outbox rows (an evaluation's reset of its
-- workspace, a workspace removed) checked every deleted row against the whole outbox. Deleting
-- bank-to-ledger's 21,500 rows took 57 s.
create index delivery_outbox_by_supersedes on ops.delivery_outbox (supersedes_outbox_id)
    where supersedes_outbox_id is not null;
