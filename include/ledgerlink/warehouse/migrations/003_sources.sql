-- Sources you can trust: quarantined records, Square webhook events, OAuth state, and the raw
-- tables for the QuickBooks entities read since 001.

-- A record (or a whole response) a source sent that ledgerlink could not land: kept with the raw
-- text exactly as received and the reason, shown to operators and retried on the next run.
-- The raw payload is text, not jsonb: malformed JSON and \u0000 must be storable too (a NUL
-- character is stored escaped, see ledgerlink.warehouse.landing.reject_records).
create table ops.rejected_records (
    rejection_id bigint generated always as identity primary key,
    workspace_id text not null references ops.workspaces,
    source text not null,
    entity text not null,
    source_record_id text,
    raw_payload text not null,
    raw_payload_sha256 text not null,
    reason text not null,
    rejected_at timestamptz not null default now(),
    rejected_by_run text not null,
    attempts integer not null default 1,
    -- open: waiting for a fix or a retry; landed: a later read or retry landed it; discarded: a person gave up on it
    retry_state text not null default 'open' check (retry_state in ('open', 'landed', 'discarded')),
    resolved_at timestamptz,
    unique (workspace_id, source, entity, raw_payload_sha256)
);

create index rejected_records_open on ops.rejected_records (workspace_id, source) where retry_state = 'open';

-- Square webhook events exactly as delivered (the raw body, after the signature checked out).
-- event_id is unique for ever: a retry or replay of the same event lands nothing.
create table raw.square_webhook_events (
    workspace_id text not null references ops.workspaces,
    event_id text not null primary key,
    event_type text,
    merchant_id text,
    raw_body text not null,
    payload jsonb,
    square_retry_number integer,
    received_at timestamptz not null default now(),
    processed_at timestamptz,
    -- landed: the payment went to raw.square_payments; stale: an equal or newer version was
    -- already landed; ignored: not an event ledgerlink reads; rejected: quarantined
    outcome text check (outcome in ('landed', 'stale', 'ignored', 'rejected'))
);

create index square_webhook_events_unprocessed on raw.square_webhook_events (workspace_id)
    where processed_at is null;

-- Where Square sends a workspace's notifications, and the subscription's signature key
-- (Fernet-encrypted, like every token). The notification URL is part of the signed payload.
create table ops.square_webhook_subscriptions (
    workspace_id text primary key references ops.workspaces,
    notification_url text not null,
    signature_key_encrypted bytea not null,
    updated_at timestamptz not null default now()
);

-- OAuth authorization requests in flight (the state parameter binds a callback to its request)
-- and registered OAuth clients (RFC 7591 dynamic registration).
create table ops.oauth_states (
    state text primary key,
    workspace_id text not null references ops.workspaces,
    source text not null,
    redirect_uri text not null,
    code_verifier text,
    created_at timestamptz not null default now(),
    consumed_at timestamptz
);

-- Connection status is ops.source_credentials.status: connected | needs_reauth.
alter table ops.source_credentials add column status_detail text;
alter table ops.source_credentials add constraint source_credentials_status_known
    check (status in ('connected', 'needs_reauth'));

create table raw.qbo_tax_codes (like raw.qonto_supplier_invoices including all);
create table raw.qbo_exchange_rates (like raw.qonto_supplier_invoices including all);
create table raw.qbo_bills (like raw.qonto_supplier_invoices including all);
create table raw.qbo_purchases (like raw.qonto_supplier_invoices including all);

-- What each extraction read, per run and entity: count in = landed (new or already there) +
-- rejected, every run, checked when the row is written.
create table ops.extraction_counts (
    workspace_id text not null references ops.workspaces,
    source text not null,
    entity text not null,
    run_id text not null,
    received integer not null,
    landed_new integer not null,
    landed_already integer not null,
    rejected integer not null,
    unreadable_responses integer not null default 0,
    recorded_at timestamptz not null default now(),
    primary key (workspace_id, source, entity, run_id),
    check (received = landed_new + landed_already + rejected)
);
