with

routing_decisions as (
    select
        decision_id,
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        route,
        score,
        top_candidate_type,
        top_candidate_id,
        top_candidate_name,
        candidates,
        model_version,
        decided_at
    from {{ ref('stg_ops__routing_decisions') }}
),

source_records as (
    select
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        counterparty_name,
        amount_minor,
        currency,
        occurred_on,
        reference
    from {{ ref('int_source_records_unioned') }}
),

review_decisions as (
    select
        decision_id,
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        score,
        top_candidate_type,
        top_candidate_id,
        top_candidate_name,
        candidates,
        model_version,
        decided_at
    from routing_decisions
    where route = 'review'
),

final as (
    select
        review_decisions.decision_id,
        review_decisions.workspace_id,
        review_decisions.source,
        review_decisions.source_record_id,
        review_decisions.source_payload_sha256,
        review_decisions.score,
        review_decisions.top_candidate_type,
        review_decisions.top_candidate_id,
        review_decisions.top_candidate_name,
        review_decisions.candidates,
        source_records.counterparty_name,
        source_records.amount_minor,
        source_records.currency,
        source_records.occurred_on,
        source_records.reference,
        -- the record changed after it was decided: the next scoring run decides it again
        coalesce(
            source_records.source_payload_sha256 <> review_decisions.source_payload_sha256,
            false
        ) as is_record_changed_since_decision,
        review_decisions.decided_at,
        review_decisions.model_version
    from review_decisions
    left join source_records
        on
            review_decisions.workspace_id = source_records.workspace_id
            and review_decisions.source = source_records.source
            and review_decisions.source_record_id = source_records.source_record_id
)

select * from final
