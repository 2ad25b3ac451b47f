{#-
    A payment is also re-staged when its customer landed a new version: its row is unchanged, but
    its staged_snapshot_xmin moves on, so a model downstream that names the counterparty from the
    customer finds it among the records changed since its own last build. (The source takes no
    alias: `dbt run --empty` renders it as an aliased subquery.)
-#}
{%- set payments_of_changed_customers -%}
    select
        workspace_id,
        payment_id
    from {{ this }}
    where (workspace_id, customer_id) in (
        select
            workspace_id,
            source_record_id
        from {{ source('square', 'customers') }}
        where landed_xid >= {{ last_build_snapshot_xmin() }}
    )
{%- endset -%}

{{
    config(
        unique_key=['workspace_id', 'payment_id'],
        indexes=[
            {'columns': ['workspace_id', 'payment_id'], 'unique': true},
            {'columns': ['workspace_id', 'customer_id']},
            {'columns': ['staged_snapshot_xmin']},
        ],
    )
}}

with

payment_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        source_updated_at,
        landed_at
    from {{ source('square', 'payments') }}
    {{ records_landed_since_last_build(source('square', 'payments'), payments_of_changed_customers) }}
),

-- raw is append-only (payment.created, then payment.updated, ...): keep the latest content
latest_versions as (
    {{ latest_version_per_record('payment_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as payment_id,
        payload_sha256 as source_payload_sha256,
        payload ->> 'status' as payment_status,
        -- Square money is already in minor units; amount_money excludes the tip
        (payload -> 'amount_money' ->> 'amount')::bigint as amount_minor,
        upper(payload -> 'amount_money' ->> 'currency') as currency,
        (payload -> 'total_money' ->> 'amount')::bigint as total_amount_minor,
        -- Square keeps the sum of completed refunds on the payment itself (tip included)
        coalesce((payload -> 'refunded_money' ->> 'amount')::bigint, 0) as refunded_amount_minor,
        coalesce((payload -> 'refunded_money' ->> 'amount')::bigint, 0) >= coalesce(
            (payload -> 'total_money' ->> 'amount')::bigint,
            (payload -> 'amount_money' ->> 'amount')::bigint
        ) as is_fully_refunded,
        payload ->> 'location_id' as location_id,
        nullif(payload ->> 'customer_id', '') as customer_id,
        nullif(btrim(payload ->> 'reference_id'), '') as reference_id,
        payload ->> 'note' as note,
        payload ->> 'receipt_number' as receipt_number,
        lower(nullif(btrim(payload ->> 'buyer_email_address'), '')) as buyer_email_address,
        {{ iso_timestamp("payload ->> 'created_at'") }} as created_at,
        {{ iso_timestamp("payload ->> 'updated_at'") }} as updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
