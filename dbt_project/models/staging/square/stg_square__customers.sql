{{
    config(
        unique_key=['workspace_id', 'customer_id'],
        indexes=[{'columns': ['workspace_id', 'customer_id'], 'unique': true}],
    )
}}

with

customer_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        source_updated_at,
        landed_at
    from {{ source('square', 'customers') }}
    {{ records_landed_since_last_build(source('square', 'customers')) }}
),

-- raw is append-only: keep the latest content of each customer
latest_versions as (
    {{ latest_version_per_record('customer_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as customer_id,
        payload_sha256 as source_payload_sha256,
        nullif(btrim(payload ->> 'given_name'), '') as given_name,
        nullif(btrim(payload ->> 'family_name'), '') as family_name,
        nullif(btrim(payload ->> 'company_name'), '') as company_name,
        lower(nullif(btrim(payload ->> 'email_address'), '')) as email_address,
        nullif(btrim(payload ->> 'reference_id'), '') as reference_id,
        (payload ->> 'version')::bigint as customer_version,
        {{ iso_timestamp("payload ->> 'created_at'") }} as created_at,
        {{ iso_timestamp("payload ->> 'updated_at'") }} as updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
