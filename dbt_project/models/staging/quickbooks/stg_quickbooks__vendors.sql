{{
    config(
        unique_key=['workspace_id', 'vendor_id'],
        indexes=[{'columns': ['workspace_id', 'vendor_id'], 'unique': true}],
    )
}}

with

vendor_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        source_updated_at,
        landed_at
    from {{ source('quickbooks', 'vendors') }}
    {{ records_landed_since_last_build(source('quickbooks', 'vendors')) }}
),

-- raw is append-only: keep the latest content of each vendor
latest_versions as (
    {{ latest_version_per_record('vendor_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as vendor_id,
        payload_sha256 as source_payload_sha256,
        nullif(btrim(payload ->> 'DisplayName'), '') as display_name,
        nullif(btrim(payload ->> 'CompanyName'), '') as company_name,
        -- QuickBooks "deletes" a vendor by making it inactive; absent means active
        coalesce({{ json_boolean("payload ->> 'Active'") }}, true) as is_active,
        upper(payload -> 'CurrencyRef' ->> 'value') as currency,
        {{ iso_timestamp("payload -> 'MetaData' ->> 'LastUpdatedTime'") }} as last_updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
