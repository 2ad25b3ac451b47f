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
        resolved_at
    from {{ source('ops', 'incidents') }}
),

final as (
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
    from incidents
)

select * from final
