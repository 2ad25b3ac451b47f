{#- Indexed on staged_snapshot_xmin: each window's rematch rule (int_source_records_rematched)
    and data tests (macros/get_where_subquery.sql) look up the rows staged since a build. -#}
{{
    config(
        unique_key=['workspace_id', 'customer_id'],
        indexes=[
            {'columns': ['workspace_id', 'customer_id'], 'unique': true},
            {'columns': ['staged_snapshot_xmin']},
        ],
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
    from {{ source('quickbooks', 'customers') }}
    {{ records_landed_since_last_build(source('quickbooks', 'customers')) }}
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
        nullif(btrim(payload ->> 'DisplayName'), '') as display_name,
        nullif(btrim(payload ->> 'CompanyName'), '') as company_name,
        nullif(btrim(payload ->> 'GivenName'), '') as given_name,
        nullif(btrim(payload ->> 'FamilyName'), '') as family_name,
        lower(nullif(btrim(payload -> 'PrimaryEmailAddr' ->> 'Address'), '')) as email_address,
        upper(payload -> 'CurrencyRef' ->> 'value') as currency,
        coalesce({{ json_boolean("payload ->> 'Active'") }}, true) as is_active,
        {{ iso_timestamp("payload -> 'MetaData' ->> 'LastUpdatedTime'") }} as last_updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
