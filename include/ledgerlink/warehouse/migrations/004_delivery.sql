-- Delivery that never loses or doubles a document.
--
-- Outbox states: pending -> sending -> sent -> posted, or rejected (a permanent refusal, kept
-- with its reason) or failed (transient failures that outlived their bounds). `sending` is
-- committed before any byte goes out; `unconfirmed_data_at` is committed just before the DATA
-- command and cleared by the server's reply to it, so after a crash a row still carrying it is
-- exactly the window where the email-in may have accepted the message unseen. Its resend keeps
-- the Message-ID and sets `is_possible_duplicate`.
alter table ops.delivery_outbox drop constraint delivery_outbox_status_check;
alter table ops.delivery_outbox add constraint delivery_outbox_status_check
    check (status in ('pending', 'sending', 'sent', 'posted', 'rejected', 'failed', 'superseded'));
alter table ops.delivery_outbox
    add column unconfirmed_data_at timestamptz,
    add column is_possible_duplicate boolean not null default false,
    add column next_attempt_at timestamptz,
    add column rejected_reason text,
    add column mapping_version integer,
    -- an update of a record already delivered references the outbox row it replaces
    add column supersedes_outbox_id bigint references ops.delivery_outbox,
    add column needs_person boolean not null default false,
    add column needs_person_reason text,
    add column posted_at timestamptz,
    add column quickbooks_entity text,
    add column quickbooks_id text;

alter table ops.delivery_attempts
    add column finished_at timestamptz,
    add column smtp_phase text;

create index delivery_outbox_open on ops.delivery_outbox (workspace_id, status)
    where status in ('pending', 'sending');

alter table ops.routing_decisions add column mapping_version integer;

-- Field mappings, versioned. A version applies from `valid_from`; the version in effect when a
-- record was reconciled is stamped on its decision and outbox row and never changes afterwards.
create table ops.field_mappings (
    workspace_id text not null references ops.workspaces,
    mapping_version integer not null check (mapping_version > 0),
    valid_from timestamptz not null,
    -- {"overrides": {field: constant}, "ignored": [field], "computed": {field: expression}}
    spec jsonb not null,
    created_by text not null,
    created_at timestamptz not null default now(),
    primary key (workspace_id, mapping_version),
    unique (workspace_id, valid_from)
);

-- Conversion into the workspace's home currency, as found at posting time.
create table ops.exchange_rates (
    workspace_id text not null references ops.workspaces,
    source_currency text not null,
    target_currency text not null,
    rate numeric not null check (rate > 0),
    rate_date date not null,
    rate_source text not null,
    primary key (workspace_id, source_currency, target_currency, rate_date)
);
