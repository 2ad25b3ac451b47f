-- The staging models are incremental: each build re-stages only the records with a version
-- landed since the previous build. landed_at cannot say which those are: it is the landing
-- transaction's start, and a transaction still open during a build (a long first-sync chunk, a
-- webhook) commits rows stamped before the build after it has read. landed_xid is the landing
-- transaction's id instead; a build keeps the xmin of its snapshot (every transaction below it had
-- ended, so its rows were visible) and the next build reads from there.
--
-- Rows landed before this migration get 0, older than any build: a constant default adds the
-- column without rewriting the table, and the per-row default applies from then on.
do $$
declare
    raw_table text;
begin
    foreach raw_table in array array[
        'qonto_supplier_invoices', 'qonto_attachments',
        'square_payments', 'square_customers', 'square_refunds',
        'qbo_vendors', 'qbo_customers', 'qbo_invoices', 'qbo_accounts'
    ] loop
        execute format('alter table raw.%I add column landed_xid xid8 not null default %L', raw_table, '0');
        execute format('alter table raw.%I alter column landed_xid set default pg_current_xact_id()', raw_table);
        execute format('create index %I on raw.%I (landed_xid)', raw_table || '_by_landed_xid', raw_table);
    end loop;
end
$$;
