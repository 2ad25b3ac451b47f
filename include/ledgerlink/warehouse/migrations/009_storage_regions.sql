-- Each workspace's storage region: the database and blob store that hold its customer data
-- (ledgerlink.warehouse.regions). Fixed when the workspace is created; 'default' is the
-- configuration database itself, the only region when none is configured.
alter table ops.workspaces add column storage_region text not null default 'default';
