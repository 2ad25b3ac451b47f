-- How many documents each workspace has in each delivery state.
with

delivery_status as (
    select
        workspace_id,
        delivery_state,
        is_never_posted,
        needs_person
    from {{ ref('delivery_status') }}
),

final as (
    select
        workspace_id,
        delivery_state,
        count(*) as delivery_count,
        count(*) filter (where is_never_posted) as never_posted_count,
        count(*) filter (where needs_person) as needs_person_count
    from delivery_status
    group by workspace_id, delivery_state
)

select * from final
