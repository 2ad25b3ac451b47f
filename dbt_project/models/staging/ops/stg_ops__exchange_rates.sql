with

exchange_rates as (
    select
        workspace_id,
        source_currency,
        target_currency,
        rate,
        rate_date,
        rate_source,
        changed_xid
    from {{ source('ops', 'exchange_rates') }}
),

final as (
    select
        workspace_id,
        upper(source_currency) as source_currency,
        upper(target_currency) as target_currency,
        rate,
        rate_date,
        rate_source,
        changed_xid
    from exchange_rates
)

select * from final
