{#-
    Incremental matching: a window costs the records it touched, not the whole history.

    int_source_records_rematched stamps, at each build, the records whose candidates may have
    changed since its previous build (new or restaged records, and the records a changed ledger
    entry, reviewer verdict or exchange rate bears on; its yml says which). The models keyed on
    the record downstream of it (int_match_candidates_blocked, int_match_features_computed,
    match_features) rebuild exactly the records stamped since their own last build: each row
    keeps built_snapshot_xmin, the xmin of the snapshot that built it, as staging does
    (incremental_staging.sql). Their pre-hook first deletes every row of those records, so a
    pair that is gone (a closed invoice, a renamed vendor) does not linger, even when the record
    has no candidate left; the build then appends their rows (incremental_strategy 'append': the
    record, not the pair, is the unit that is replaced, and the hook has already cleared it).
-#}

{#- A where clause's condition: the rows of the records rematched since this model's last build. -#}
{% macro rematched_since_last_build() -%}
    (workspace_id, source, source_record_id) in (
        select
            workspace_id,
            source,
            source_record_id
        from {{ ref('int_source_records_rematched') }}
        where rematched_snapshot_xmin >= {{ last_build_snapshot_xmin('built_snapshot_xmin') }}
    )
{%- endmacro %}


{#- The pre-hook of a model keyed on the record: on an incremental build, delete the rows of the
    records it rebuilds (nothing on a full build, which replaces the table). -#}
{% macro delete_rematched_records() -%}
    {%- if is_restaging() -%}
        delete from {{ this }} where {{ rematched_since_last_build() }}
    {%- endif -%}
{%- endmacro %}
