-- One row per document queued for the email-in, with the state people see on the status page.
with

delivery_outbox as (
    select
        outbox_id,
        decision_id,
        workspace_id,
        source,
        source_record_id,
        message_id,
        delivery_status,
        attempt_count,
        last_error,
        rejected_reason,
        is_possible_duplicate,
        needs_person,
        needs_person_reason,
        supersedes_outbox_id,
        mapping_version,
        amount_minor,
        currency,
        home_currency,
        converted_amount_minor,
        exchange_rate,
        exchange_rate_date,
        exchange_rate_source,
        quickbooks_entity,
        quickbooks_id,
        created_at,
        sent_at,
        posted_at
    from {{ ref('stg_ops__delivery_outbox') }}
),

mapping_versions as (
    select
        decision_id,
        mapping_version as resolved_mapping_version
    from {{ ref('int_routing_decisions_mapping_versions_resolved') }}
),

final as (
    select
        delivery_outbox.outbox_id,
        delivery_outbox.decision_id,
        delivery_outbox.workspace_id,
        delivery_outbox.source,
        delivery_outbox.source_record_id,
        delivery_outbox.message_id,
        case
            when delivery_outbox.delivery_status = 'sending' then 'pending'
            when delivery_outbox.delivery_status = 'sent' and delivery_outbox.is_possible_duplicate
                then 'possible_duplicate'
            else delivery_outbox.delivery_status
        end as delivery_state,
        delivery_outbox.attempt_count,
        delivery_outbox.last_error,
        delivery_outbox.rejected_reason,
        delivery_outbox.is_possible_duplicate,
        delivery_outbox.needs_person,
        delivery_outbox.needs_person_reason,
        delivery_outbox.supersedes_outbox_id,
        coalesce(delivery_outbox.mapping_version, mapping_versions.resolved_mapping_version) as mapping_version,
        delivery_outbox.amount_minor,
        delivery_outbox.currency,
        delivery_outbox.home_currency,
        delivery_outbox.converted_amount_minor,
        delivery_outbox.exchange_rate,
        delivery_outbox.exchange_rate_date,
        delivery_outbox.exchange_rate_source,
        delivery_outbox.quickbooks_entity,
        delivery_outbox.quickbooks_id,
        delivery_outbox.created_at,
        delivery_outbox.sent_at,
        delivery_outbox.posted_at,
        (
            delivery_outbox.delivery_status = 'sent'
            and delivery_outbox.sent_at
            < now() - make_interval(days => {{ var('never_posted_after_days') }})
        ) as is_never_posted
    from delivery_outbox
    left join mapping_versions
        on delivery_outbox.decision_id = mapping_versions.decision_id
)

select * from final
