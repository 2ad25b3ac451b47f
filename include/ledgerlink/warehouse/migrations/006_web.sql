-- Who may work on which workspace in the pages of the Airflow plugin. Airflow authenticates the
-- user; this table authorises them, per workspace: a user with no row here sees nothing, whatever
-- their Airflow role.
create table ops.workspace_members (
    workspace_id text not null references ops.workspaces,
    username text not null,
    added_at timestamptz not null default now(),
    primary key (workspace_id, username)
);

create index workspace_members_by_user on ops.workspace_members (username);

-- The review page loads a decision's actions; the status page lists failed deliveries.
create index review_actions_by_decision on ops.review_actions (decision_id);
create index delivery_outbox_by_status on ops.delivery_outbox (workspace_id, status);
create index delivery_attempts_by_outbox on ops.delivery_attempts (outbox_id);
