with

delivery_outbox as (
    select
        outbox_id,
        decision_id,
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        message_id,
        status,
        attempt_count,
        created_at,
        sent_at
    from {{ source('ops', 'delivery_outbox') }}
),

final as (
    select
        outbox_id,
        decision_id,
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        message_id,
        status as delivery_status,
        attempt_count,
        created_at,
        sent_at
    from delivery_outbox
)

select * from final
