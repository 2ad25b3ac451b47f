-- One row per auto-linked record, with what later happened to the link: QuickBooks posted its
-- document (confirmed), a reviewer accepted the same entry (confirmed), or a reviewer refused it
-- or pinned another entry (contradicted). The dashboard's auto-link precision is
-- confirmed / (confirmed + contradicted); links with neither yet are left out of it.
with

routing_decisions as (
    select
        decision_id,
        workspace_id,
        source,
        source_record_id,
        top_candidate_type,
        top_candidate_id,
        decided_at,
        decided_on
    from {{ ref('stg_ops__routing_decisions') }}
    where route = 'auto_link'
),

delivery_outbox as (
    select
        decision_id,
        delivery_status,
        quickbooks_id
    from {{ ref('stg_ops__delivery_outbox') }}
),

review_actions as (
    select
        decision_id,
        candidate_type,
        candidate_id,
        is_link,
        acted_at
    from {{ ref('stg_ops__review_actions') }}
),

postings as (
    select distinct decision_id
    from delivery_outbox
    where delivery_status = 'posted' and quickbooks_id is not null
),

-- a reviewer's latest word on the record after the auto-link
latest_reviews as (
    select distinct on (routing_decisions.decision_id)
        routing_decisions.decision_id,
        review_actions.is_link
        and review_actions.candidate_type = routing_decisions.top_candidate_type
        and review_actions.candidate_id = routing_decisions.top_candidate_id as is_same_entry
    from routing_decisions
    inner join review_actions
        on
            routing_decisions.decision_id = review_actions.decision_id
            and routing_decisions.decided_at <= review_actions.acted_at
    order by routing_decisions.decision_id asc, review_actions.acted_at desc
),

final as (
    select
        routing_decisions.decision_id,
        routing_decisions.workspace_id,
        routing_decisions.source,
        routing_decisions.source_record_id,
        routing_decisions.decided_on,
        case
            when latest_reviews.is_same_entry is false then 'contradicted_by_review'
            when postings.decision_id is not null then 'confirmed_by_posting'
            when latest_reviews.is_same_entry then 'confirmed_by_review'
            else 'unconfirmed'
        end as outcome,
        coalesce(latest_reviews.is_same_entry is false, false) as is_contradicted,
        coalesce(latest_reviews.is_same_entry is not false and (
            postings.decision_id is not null or latest_reviews.is_same_entry
        ), false) as is_confirmed
    from routing_decisions
    left join postings on routing_decisions.decision_id = postings.decision_id
    left join latest_reviews on routing_decisions.decision_id = latest_reviews.decision_id
)

select * from final
