-- The matching models are incremental (dbt_project/models/intermediate/matching): a build
-- re-blocks only the records touched since the previous one. Reviewer verdicts (confirmed links)
-- and exchange rates (converted amounts) touch records too, so each of their rows records the
-- transaction that last wrote it, as raw rows do (migration 015): a build reads the rows written
-- from the oldest transaction still open at the previous build on. An exchange rate is upserted
-- in place, so an update stamps it again.
--
-- Rows written before this migration get 0, older than any build.
alter table ops.review_actions add column changed_xid xid8 not null default '0';
alter table ops.review_actions alter column changed_xid set default pg_current_xact_id();
create index review_actions_by_changed_xid on ops.review_actions (changed_xid);

alter table ops.exchange_rates add column changed_xid xid8 not null default '0';
alter table ops.exchange_rates alter column changed_xid set default pg_current_xact_id();
create index exchange_rates_by_changed_xid on ops.exchange_rates (changed_xid);

create function ops.stamp_changed_xid() returns trigger language plpgsql as $$
begin
    new.changed_xid := pg_current_xact_id();
    return new;
end
$$;

create trigger exchange_rates_stamp_changed_xid
    before update on ops.exchange_rates
    for each row execute function ops.stamp_changed_xid();

-- The matching models were plain tables before this migration, without the stamps and name
-- keys their incremental builds keep (and `on_schema_change: fail` refuses to add them to old
-- rows). Dropping them here makes the next dbt build rebuild them in full, so a warehouse that
-- is upgraded needs no manual `dbt build --full-refresh`. Views over them are rebuilt by the
-- same dbt build. On a fresh warehouse there is nothing to drop.
drop table if exists
    marts.match_features,
    intermediate.int_match_features_computed,
    intermediate.int_match_candidates_blocked,
    intermediate.int_source_records_unioned
    cascade;
