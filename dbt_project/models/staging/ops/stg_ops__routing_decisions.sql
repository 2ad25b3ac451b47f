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
        auto_link_threshold,
        review_threshold,
        top_candidate_type,
        top_candidate_id,
        candidates,
        explanation,
        model_version,
        decided_at,
        decided_by_run
    from {{ source('ops', 'routing_decisions') }}
),

final as (
    select
        decision_id,
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        route,
        score,
        auto_link_threshold,
        review_threshold,
        top_candidate_type,
        top_candidate_id,
        candidates -> 0 ->> 'candidate_name' as top_candidate_name,
        candidates,
        explanation,
        model_version,
        decided_at,
        (decided_at at time zone 'UTC')::date as decided_on,
        decided_by_run
    from routing_decisions
)

select * from final
