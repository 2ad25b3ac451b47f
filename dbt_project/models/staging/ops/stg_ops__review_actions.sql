with

review_actions as (
    select
        action_id,
        workspace_id,
        decision_id,
        source,
        source_record_id,
        source_payload_sha256,
        action,
        candidate_type,
        candidate_id,
        actor,
        acted_at,
        changed_xid
    from {{ source('ops', 'review_actions') }}
),

final as (
    select
        *,
        action in ('accept', 'pin') as is_link
    from review_actions
)

select * from final
