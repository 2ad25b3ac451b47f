-- Reconnecting a source from the status page, and acknowledging a record changed after delivery.
--
-- An authorization request (ops.oauth_states) now says who started it (the page's user; null
-- for `ledgerlink connect`) and until when its callback is accepted, so a state replayed by
-- another user, or after it expired, is refused. `outcome` keeps how it ended.
alter table ops.oauth_states
    add column requested_by text,
    add column expires_at timestamptz not null default now() + interval '10 minutes',
    add column outcome text;

-- Who closed an incident by hand (a person reconnecting); null when a run's success closed it.
alter table ops.incidents add column resolved_by text;

-- A record changed after its document was delivered needs a person to check QuickBooks; once
-- someone has, the acknowledgement (who, when) takes it off the status page. The row itself,
-- and its delivery, are unchanged.
alter table ops.delivery_outbox
    add column needs_person_resolved_at timestamptz,
    add column needs_person_resolved_by text,
    add constraint delivery_outbox_acknowledged_needs_person
        check (needs_person_resolved_at is null or (needs_person and needs_person_resolved_by is not null));
