with

workspaces as (
    select
        workspace_id,
        display_name,
        home_currency,
        auto_link_threshold,
        review_threshold,
        is_active,
        created_at
    from {{ source('ops', 'workspaces') }}
),

final as (
    select
        workspace_id,
        display_name,
        upper(home_currency) as home_currency,
        auto_link_threshold,
        review_threshold,
        is_active,
        created_at
    from workspaces
)

select * from final
