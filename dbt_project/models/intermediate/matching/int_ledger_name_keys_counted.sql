{#-
    How many ledger entries hold each name key, per workspace and candidate type: a key held by
    more than var('blocking_max_candidates_per_key') entries narrows nothing, and blocking skips
    it. This depends on the whole ledger, so it is a small table rebuilt in full each run (one
    row per distinct key). Each key keeps selectivity_changed_snapshot_xmin from the previous
    version of this table while is_selective stays the same, so int_source_records_rematched can
    re-block the records holding a key that just became selective or stopped being so.
-#}
{%- set previous = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier)
    if execute and this is not none else none -%}

{{ config(indexes=[{'columns': ['workspace_id', 'candidate_type', 'name_key'], 'unique': true}]) }}

with

ledger_entries as (
    select
        workspace_id,
        candidate_type,
        name_keys
    from {{ ref('int_ledger_entries_unioned') }}
),

ledger_name_keys as (
    select
        workspace_id,
        candidate_type,
        unnest({{ name_key_array('name_keys') }}) as name_key
    from ledger_entries
),

counted_keys as (
    select
        workspace_id,
        candidate_type,
        name_key,
        count(*) as entry_count,
        count(*) <= {{ var('blocking_max_candidates_per_key') }} as is_selective
    from ledger_name_keys
    group by workspace_id, candidate_type, name_key
),

-- this table as the previous run left it (none on the first build)
previous_keys as (
    {%- if previous %}
    select
        workspace_id,
        candidate_type,
        name_key,
        is_selective,
        selectivity_changed_snapshot_xmin
    from {{ previous }}
    {%- else %}
    select
        null::text as workspace_id,
        null::text as candidate_type,
        null::text as name_key,
        null::boolean as is_selective,
        null::xid8 as selectivity_changed_snapshot_xmin
    where false
    {%- endif %}
),

final as (
    select
        counted_keys.workspace_id,
        counted_keys.candidate_type,
        counted_keys.name_key,
        counted_keys.entry_count,
        counted_keys.is_selective,
        case
            when previous_keys.is_selective = counted_keys.is_selective
                then previous_keys.selectivity_changed_snapshot_xmin
            else {{ staged_snapshot_xmin() }}
        end as selectivity_changed_snapshot_xmin
    from counted_keys
    left join previous_keys
        on
            counted_keys.workspace_id = previous_keys.workspace_id
            and counted_keys.candidate_type = previous_keys.candidate_type
            and counted_keys.name_key = previous_keys.name_key
)

select * from final
