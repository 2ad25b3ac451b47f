-- Match models: each training of a workspace's Fellegi-Sunter model (per kind of ledger entry),
-- its m/u probabilities and what it learned from, so a decision's model_version can always be
-- traced to the weights that made it.
create table ops.match_models (
    workspace_id text not null references ops.workspaces,
    candidate_type text not null,
    model_version text not null,
    parameters jsonb not null,
    trained_at timestamptz not null,
    trained_by_run text not null,
    primary key (workspace_id, candidate_type, model_version)
);
