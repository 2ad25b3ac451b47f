{#
    raw.* is append-only: a record whose content changed lands as a new row. This keeps the
    latest version of each record of `relation` (a CTE over one raw table): the newest source
    updated_at, then the latest landing, then the payload hash so ties resolve the same way on
    every run.
#}
{% macro latest_version_per_record(relation) %}
    select distinct on (workspace_id, source_record_id) *
    from {{ relation }}
    order by
        workspace_id asc,
        source_record_id asc,
        source_updated_at desc nulls last,
        landed_at desc,
        payload_sha256 desc
{% endmacro %}
