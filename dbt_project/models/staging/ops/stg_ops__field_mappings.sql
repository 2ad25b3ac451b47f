with

field_mappings as (
    select
        workspace_id,
        mapping_version,
        valid_from,
        spec,
        created_by,
        created_at
    from {{ source('ops', 'field_mappings') }}
),

final as (
    select
        workspace_id,
        mapping_version,
        valid_from,
        spec,
        created_by,
        created_at
    from field_mappings
)

select * from final
