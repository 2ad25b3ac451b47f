-- Settings and decisions keep their history.
--
-- Review thresholds are versioned like field mappings: every change to a workspace's thresholds,
-- by whichever path (the settings page, `ledgerlink workspace`), adds a version valid from the
-- moment it was saved. The matcher reads the thresholds in ops.workspaces when it decides and
-- stamps them on the decision, and a decision is only rewritten when its record changes, so a new
-- version applies to records reconciled after it and never to those already decided.
create table ops.threshold_versions (
    workspace_id text not null references ops.workspaces,
    threshold_version integer not null check (threshold_version > 0),
    valid_from timestamptz not null,
    auto_link_threshold numeric not null check (auto_link_threshold between 0 and 1),
    review_threshold numeric not null check (review_threshold between 0 and 1),
    -- who saved it: the settings page sets ledgerlink.actor for its transaction
    created_by text not null,
    primary key (workspace_id, threshold_version),
    check (review_threshold <= auto_link_threshold)
);

create function ops.record_threshold_version() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE'
        and new.auto_link_threshold = old.auto_link_threshold
        and new.review_threshold = old.review_threshold then
        return new;
    end if;
    insert into ops.threshold_versions
        (workspace_id, threshold_version, valid_from, auto_link_threshold, review_threshold, created_by)
    select
        new.workspace_id,
        coalesce(max(v.threshold_version), 0) + 1,
        clock_timestamp(),
        new.auto_link_threshold,
        new.review_threshold,
        coalesce(nullif(current_setting('ledgerlink.actor', true), ''), current_user)
    from ops.threshold_versions as v
    where v.workspace_id = new.workspace_id;
    return new;
end;
$$;

create trigger workspaces_threshold_versions
after insert or update of auto_link_threshold, review_threshold on ops.workspaces
for each row execute function ops.record_threshold_version();

insert into ops.threshold_versions
    (workspace_id, threshold_version, valid_from, auto_link_threshold, review_threshold, created_by)
select workspace_id, 1, created_at, auto_link_threshold, review_threshold, 'migration 010'
from ops.workspaces;

-- Every decision the matcher made, with its model and mapping versions. ops.routing_decisions
-- holds the current decision per record and is overwritten when the record changes; this keeps
-- each one. A review moves the current decision to the chosen entry but not the history: the
-- review itself is in ops.review_actions. The mapping version is the one the decision's document
-- was queued (or retried) with, stamped from ops.delivery_outbox.
create table ops.routing_decision_history (
    -- no foreign key: the history outlives a decision a benchmark workspace's reset deletes
    decision_id bigint not null,
    decided_at timestamptz not null,
    source_payload_sha256 text not null,
    workspace_id text not null,
    source text not null,
    source_record_id text not null,
    route text not null,
    score numeric not null,
    auto_link_threshold numeric not null,
    review_threshold numeric not null,
    top_candidate_type text,
    top_candidate_id text,
    candidates jsonb not null,
    explanation jsonb not null,
    model_version text not null,
    mapping_version integer,
    decided_by_run text not null,
    primary key (decision_id, decided_at, source_payload_sha256)
);

create index routing_decision_history_by_record
on ops.routing_decision_history (workspace_id, source, source_record_id);

create function ops.record_decision_history() returns trigger
language plpgsql as $$
begin
    -- a new decision has no mapping version yet (its document is not queued): the outbox
    -- trigger below stamps it; the row in ops.routing_decisions may still carry the stamp of the
    -- record's earlier decision, which must not be copied
    insert into ops.routing_decision_history (
        decision_id, decided_at, source_payload_sha256, workspace_id, source, source_record_id,
        route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
        candidates, explanation, model_version, mapping_version, decided_by_run)
    values (
        new.decision_id, new.decided_at, new.source_payload_sha256, new.workspace_id, new.source,
        new.source_record_id, new.route, new.score, new.auto_link_threshold, new.review_threshold,
        new.top_candidate_type, new.top_candidate_id, new.candidates, new.explanation,
        new.model_version,
        (select max(o.mapping_version) from ops.delivery_outbox as o
         where o.decision_id = new.decision_id and o.source_payload_sha256 = new.source_payload_sha256),
        new.decided_by_run)
    on conflict (decision_id, decided_at, source_payload_sha256) do nothing;
    return new;
end;
$$;

create trigger routing_decisions_history
after insert or update on ops.routing_decisions
for each row execute function ops.record_decision_history();

-- The mapping version a decision's document was queued (or retried) with.
create function ops.stamp_decision_history_mapping() returns trigger
language plpgsql as $$
begin
    update ops.routing_decision_history as h
    set mapping_version = new.mapping_version
    where h.decision_id = new.decision_id and h.source_payload_sha256 = new.source_payload_sha256
        and h.mapping_version is distinct from new.mapping_version;
    return new;
end;
$$;

create trigger delivery_outbox_decision_mapping
after insert or update of mapping_version on ops.delivery_outbox
for each row when (new.decision_id is not null and new.mapping_version is not null)
execute function ops.stamp_decision_history_mapping();

insert into ops.routing_decision_history (
    decision_id, decided_at, source_payload_sha256, workspace_id, source, source_record_id,
    route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
    candidates, explanation, model_version, mapping_version, decided_by_run)
select
    decision_id, decided_at, source_payload_sha256, workspace_id, source, source_record_id,
    route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
    candidates, explanation, model_version, mapping_version, decided_by_run
from ops.routing_decisions;
