-- raw: payloads exactly as received, append-only. A changed record lands as a new row; the same
-- payload landing twice (rerun, marker rewind, replay) is absorbed by the unique key.
create schema if not exists raw;
create schema if not exists ops;

create table raw.qonto_supplier_invoices (
    workspace_id text not null,
    source_record_id text not null,
    payload jsonb not null,
    payload_sha256 text not null,
    source_updated_at timestamptz,
    landed_at timestamptz not null,
    landed_by_run text not null,
    unique (workspace_id, source_record_id, payload_sha256)
);

-- One row per attachment file; blob_sha256 names the file in the content-addressed blob store.
-- The payload keeps every field Qonto sent except the short-lived download url.
create table raw.qonto_attachments (like raw.qonto_supplier_invoices including all);
alter table raw.qonto_attachments add column blob_sha256 text not null;

create table raw.square_payments (like raw.qonto_supplier_invoices including all);
create table raw.square_customers (like raw.qonto_supplier_invoices including all);
create table raw.qbo_vendors (like raw.qonto_supplier_invoices including all);
create table raw.qbo_customers (like raw.qonto_supplier_invoices including all);
create table raw.qbo_invoices (like raw.qonto_supplier_invoices including all);
create table raw.qbo_accounts (like raw.qonto_supplier_invoices including all);

-- ops: application state written by Python.
create table ops.workspaces (
    workspace_id text primary key,
    display_name text not null,
    email_in_address text not null,
    owner_email text,
    home_currency text not null default 'EUR',
    auto_link_threshold numeric not null default 0.85,
    review_threshold numeric not null default 0.55,
    quickbooks_realm_id text,
    square_location_id text,
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    check (review_threshold <= auto_link_threshold)
);

-- Tokens are Fernet-encrypted; plaintext never reaches the database.
create table ops.source_credentials (
    workspace_id text not null references ops.workspaces,
    source text not null,
    access_token_encrypted bytea not null,
    refresh_token_encrypted bytea,
    access_token_expires_at timestamptz,
    status text not null default 'connected',
    updated_at timestamptz not null default now(),
    primary key (workspace_id, source)
);

-- The watermark per workspace, source and entity; moved in the landing transaction.
create table ops.sync_markers (
    workspace_id text not null references ops.workspaces,
    source text not null,
    entity text not null,
    marker_at timestamptz not null,
    updated_by_run text not null,
    updated_at timestamptz not null default now(),
    primary key (workspace_id, source, entity)
);

create table ops.routing_decisions (
    decision_id bigint generated always as identity primary key,
    workspace_id text not null references ops.workspaces,
    source text not null,
    source_record_id text not null,
    source_payload_sha256 text not null,
    route text not null check (route in ('auto_link', 'review', 'refused')),
    score numeric not null check (score between 0 and 1),
    auto_link_threshold numeric not null,
    review_threshold numeric not null,
    top_candidate_type text,
    top_candidate_id text,
    candidates jsonb not null,
    explanation jsonb not null,
    model_version text not null,
    decided_at timestamptz not null,
    decided_by_run text not null,
    unique (workspace_id, source, source_record_id)
);

create table ops.delivery_outbox (
    outbox_id bigint generated always as identity primary key,
    decision_id bigint not null references ops.routing_decisions,
    workspace_id text not null references ops.workspaces,
    source text not null,
    source_record_id text not null,
    source_payload_sha256 text not null,
    message_id text not null unique,
    recipient text not null,
    -- the fields printed on the document, fixed when the decision was made
    document jsonb not null,
    status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    attempt_count integer not null default 0,
    last_error text,
    created_at timestamptz not null,
    sent_at timestamptz,
    unique (workspace_id, source, source_record_id, source_payload_sha256)
);

create table ops.delivery_attempts (
    attempt_id bigint generated always as identity primary key,
    outbox_id bigint not null references ops.delivery_outbox,
    attempted_at timestamptz not null,
    attempted_by_run text not null,
    outcome text not null,
    smtp_code integer,
    detail text
);
