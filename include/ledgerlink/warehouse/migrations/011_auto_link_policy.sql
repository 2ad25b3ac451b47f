-- Per-workspace auto-link policy: a record above the maximum amount (in the record's minor units),
-- or whose counterparty or top candidate is on the never-auto-link list (names or ids, compared
-- without regard to case), waits for a person whatever its score.
alter table ops.workspaces
    add column max_auto_link_amount_minor bigint check (max_auto_link_amount_minor >= 0),
    add column never_auto_link_vendors text [] not null default '{}';
