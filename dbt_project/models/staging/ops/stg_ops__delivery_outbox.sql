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
        last_error,
        rejected_reason,
        is_possible_duplicate,
        needs_person,
        needs_person_reason,
        supersedes_outbox_id,
        mapping_version,
        document,
        quickbooks_entity,
        quickbooks_id,
        created_at,
        sent_at,
        posted_at
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
        last_error,
        rejected_reason,
        is_possible_duplicate,
        needs_person,
        needs_person_reason,
        supersedes_outbox_id,
        mapping_version,
        (document ->> 'amount_minor')::bigint as amount_minor,
        document ->> 'currency' as currency,
        document -> 'conversion' ->> 'home_currency' as home_currency,
        (document -> 'conversion' ->> 'converted_amount_minor')::bigint as converted_amount_minor,
        (document -> 'conversion' ->> 'rate')::numeric as exchange_rate,
        (document -> 'conversion' ->> 'rate_date')::date as exchange_rate_date,
        document -> 'conversion' ->> 'rate_source' as exchange_rate_source,
        quickbooks_entity,
        quickbooks_id,
        created_at,
        sent_at,
        posted_at
    from delivery_outbox
)

select * from final
