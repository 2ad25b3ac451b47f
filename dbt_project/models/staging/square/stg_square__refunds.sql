{{
    config(
        unique_key=['workspace_id', 'refund_id'],
        indexes=[{'columns': ['workspace_id', 'refund_id'], 'unique': true}],
    )
}}

with

refund_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        source_updated_at,
        landed_at
    from {{ source('square', 'refunds') }}
    {{ records_landed_since_last_build(source('square', 'refunds')) }}
),

-- raw is append-only (a refund is created PENDING and updated to COMPLETED): keep the latest
latest_versions as (
    {{ latest_version_per_record('refund_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as refund_id,
        payload_sha256 as source_payload_sha256,
        payload ->> 'payment_id' as payment_id,
        payload ->> 'status' as refund_status,
        (payload -> 'amount_money' ->> 'amount')::bigint as amount_minor,
        upper(payload -> 'amount_money' ->> 'currency') as currency,
        nullif(btrim(payload ->> 'reason'), '') as reason,
        payload ->> 'location_id' as location_id,
        {{ iso_timestamp("payload ->> 'created_at'") }} as created_at,
        {{ iso_timestamp("payload ->> 'updated_at'") }} as updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
