-- Incidents: a broken connection (source auth, SMTP auth) per workspace and channel. At most one
-- is open per workspace, channel and kind; the owner is notified once per incident, and a later
-- success resolves it.
create table ops.incidents (
    incident_id bigint generated always as identity primary key,
    workspace_id text not null references ops.workspaces,
    channel text not null,
    kind text not null,
    detail text not null,
    opened_at timestamptz not null default now(),
    opened_by_run text,
    last_seen_at timestamptz not null default now(),
    occurrences integer not null default 1,
    owner_notified_at timestamptz,
    notification_error text,
    resolved_at timestamptz
);

create unique index incidents_one_open_per_channel
    on ops.incidents (workspace_id, channel, kind) where resolved_at is null;

-- What reviewers did: each row is a label for the matcher and, for accept and pin, an
-- instruction to deliver the chosen entry through the outbox on the next run.
create table ops.review_actions (
    action_id bigint generated always as identity primary key,
    workspace_id text not null references ops.workspaces,
    decision_id bigint not null references ops.routing_decisions,
    source text not null,
    source_record_id text not null,
    source_payload_sha256 text not null,
    action text not null check (action in ('accept', 'pin', 'refuse')),
    candidate_type text,
    candidate_id text,
    actor text not null,
    acted_at timestamptz not null default now(),
    note text,
    check ((action = 'refuse') = (candidate_id is null))
);

create index review_actions_by_record on ops.review_actions (workspace_id, source, source_record_id);
