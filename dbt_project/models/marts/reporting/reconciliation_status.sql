with

routing_decisions as (
    select
        decision_id,
        workspace_id,
        source,
        source_payload_sha256,
        route,
        decided_on
    from {{ ref('stg_ops__routing_decisions') }}
),

delivery_outbox as (
    select
        decision_id,
        source_payload_sha256,
        delivery_status
    from {{ ref('stg_ops__delivery_outbox') }}
),

-- the delivery of the content that was decided; an older content's email does not count
decision_deliveries as (
    select
        routing_decisions.workspace_id,
        routing_decisions.source,
        routing_decisions.route,
        routing_decisions.decided_on,
        routing_decisions.decision_id,
        delivery_outbox.delivery_status
    from routing_decisions
    left join delivery_outbox
        on
            routing_decisions.decision_id = delivery_outbox.decision_id
            and routing_decisions.source_payload_sha256 = delivery_outbox.source_payload_sha256
),

status_counts as (
    select
        workspace_id,
        source,
        route,
        decided_on,
        count(distinct decision_id) as record_count,
        -- outbox states (migration 004): posted was sent; sending is still pending; rejected failed
        count(distinct decision_id) filter (where delivery_status in ('sent', 'posted')) as sent_count,
        count(distinct decision_id) filter (where delivery_status in ('pending', 'sending')) as pending_count,
        count(distinct decision_id) filter (where delivery_status in ('failed', 'rejected')) as failed_count
    from decision_deliveries
    group by
        workspace_id,
        source,
        route,
        decided_on
),

final as (
    select
        md5(workspace_id || '|' || source || '|' || route || '|' || decided_on::text) as reconciliation_status_id,
        workspace_id,
        source,
        route,
        decided_on,
        record_count::bigint as record_count,
        sent_count::bigint as sent_count,
        pending_count::bigint as pending_count,
        failed_count::bigint as failed_count
    from status_counts
)

select * from final
