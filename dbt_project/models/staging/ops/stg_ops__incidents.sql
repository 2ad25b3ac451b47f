with

incidents as (
    select
        incident_id,
        workspace_id,
        channel,
        kind,
        detail,
        opened_at,
        last_seen_at,
        occurrences,
        owner_notified_at,
        resolved_at,
        resolved_at is null as is_open
    from {{ source('ops', 'incidents') }}
),

final as (
    select * from incidents
)

select * from final
