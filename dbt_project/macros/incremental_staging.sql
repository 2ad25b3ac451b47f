{#-
    Incremental staging: a 15-minute window costs what it landed, not what raw holds.

    raw.* is append-only and every row carries landed_xid, the id of the transaction that landed
    it. Each staged row keeps staged_snapshot_xmin(), the xmin of the snapshot that built it: every
    transaction below it had ended, so its rows were there to read. The next build re-stages the
    records with a version landed from the newest of those on (records_landed_since_last_build),
    taking the latest of all their versions again (latest_version_per_record), so a late or an
    older version lands where a full refresh would put it. A transaction still open during a build
    has an id at or above that build's xmin, so its rows are read by the next one.

    The first build, and `dbt build --full-refresh`, stage every record.
-#}

{#- is_incremental(), except in a unit test, which has no table of its own to compare with. -#}
{% macro is_restaging() -%}
    {{ return(this is not none and is_incremental()) }}
{%- endmacro %}


{% macro staged_snapshot_xmin() -%}
    pg_snapshot_xmin(pg_current_snapshot())
{%- endmacro %}


{#- The newest `stamp` (staged_snapshot_xmin, or the build stamp of a model downstream) in the
    model's table, as a literal the planner can use with the raw table's landed_xid index ('0' for
    an empty table or a full build: stage everything). -#}
{% macro last_build_snapshot_xmin(stamp='staged_snapshot_xmin') -%}
    {%- if execute and is_restaging() -%}
        {%- set query -%}
            select coalesce(max({{ stamp }}), '0'::xid8)::text from {{ this }}
        {%- endset -%}
        '{{ run_query(query).columns[0].values()[0] }}'::xid8
    {%- else -%}
        '0'::xid8
    {%- endif -%}
{%- endmacro %}


{#- A where clause over a raw relation's versions (or nothing on a full build): the records of
    `raw_relation` with a version landed since the last build, and the (workspace_id,
    source_record_id) pairs `also_restage` selects (a query that may use last_build_snapshot_xmin()
    for records whose staged row depends on another raw table). -#}
{% macro records_landed_since_last_build(raw_relation, also_restage=none) -%}
    {%- if is_restaging() %}
    where (workspace_id, source_record_id) in (
        select
            workspace_id,
            source_record_id
        from {{ raw_relation }}
        where landed_xid >= {{ last_build_snapshot_xmin() }}
        {%- if also_restage %}
        union
        {{ also_restage }}
        {%- endif %}
    )
    {%- endif %}
{%- endmacro %}
