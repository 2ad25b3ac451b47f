-- Per workspace and connection: open incidents, and for the email-in the last successful send.
with

incidents as (
    select
        incident_id,
        workspace_id,
        channel,
        kind,
        detail,
        opened_at,
        occurrences,
        owner_notified_at,
        is_open
    from {{ ref('stg_ops__incidents') }}
),

delivery_status as (
    select
        workspace_id,
        sent_at
    from {{ ref('delivery_status') }}
),

last_sends as (
    select
        workspace_id,
        'email_in' as channel,
        max(sent_at) as last_success_at
    from delivery_status
    group by workspace_id
),

open_incidents as (
    select
        workspace_id,
        channel,
        count(*) as open_incident_count,
        min(opened_at) as open_since,
        sum(occurrences) as failure_occurrences,
        bool_and(owner_notified_at is not null) as is_owner_notified,
        string_agg(detail, '; ' order by incident_id) as open_incident_details
    from incidents
    where is_open
    group by workspace_id, channel
),

channels as (
    select
        workspace_id,
        channel
    from open_incidents
    union
    select
        workspace_id,
        channel
    from last_sends
),

final as (
    select
        channels.workspace_id,
        channels.channel,
        coalesce(open_incidents.open_incident_count, 0) as open_incident_count,
        open_incidents.open_since,
        open_incidents.failure_occurrences,
        open_incidents.is_owner_notified,
        open_incidents.open_incident_details,
        last_sends.last_success_at,
        coalesce(open_incidents.open_incident_count, 0) = 0 as is_healthy
    from channels
    left join open_incidents
        on channels.workspace_id = open_incidents.workspace_id and channels.channel = open_incidents.channel
    left join last_sends
        on channels.workspace_id = last_sends.workspace_id and channels.channel = last_sends.channel
)

select * from final
