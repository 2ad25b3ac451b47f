{{
    config(
        unique_key=['workspace_id', 'account_id'],
        indexes=[{'columns': ['workspace_id', 'account_id'], 'unique': true}],
    )
}}

with

account_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        source_updated_at,
        landed_at
    from {{ source('quickbooks', 'accounts') }}
    {{ records_landed_since_last_build(source('quickbooks', 'accounts')) }}
),

-- raw is append-only: keep the latest content of each account
latest_versions as (
    {{ latest_version_per_record('account_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as account_id,
        payload_sha256 as source_payload_sha256,
        payload ->> 'Name' as account_name,
        nullif(btrim(payload ->> 'AcctNum'), '') as account_number,
        payload ->> 'AccountType' as account_type,
        payload ->> 'AccountSubType' as account_sub_type,
        payload ->> 'Classification' as classification,
        coalesce({{ json_boolean("payload ->> 'Active'") }}, true) as is_active,
        {{ iso_timestamp("payload -> 'MetaData' ->> 'LastUpdatedTime'") }} as last_updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
