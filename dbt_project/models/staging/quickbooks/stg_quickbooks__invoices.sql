{#- Indexed on staged_snapshot_xmin: each window's rematch rule (int_source_records_rematched)
    and data tests (macros/get_where_subquery.sql) look up the rows staged since a build. -#}
{{
    config(
        unique_key=['workspace_id', 'invoice_id'],
        indexes=[
            {'columns': ['workspace_id', 'invoice_id'], 'unique': true},
            {'columns': ['staged_snapshot_xmin']},
        ],
    )
}}

with

invoice_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        source_updated_at,
        landed_at
    from {{ source('quickbooks', 'invoices') }}
    {{ records_landed_since_last_build(source('quickbooks', 'invoices')) }}
),

-- raw is append-only: keep the latest content of each invoice
latest_versions as (
    {{ latest_version_per_record('invoice_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as invoice_id,
        payload_sha256 as source_payload_sha256,
        nullif(btrim(payload ->> 'DocNumber'), '') as doc_number,
        {{ iso_date("payload ->> 'TxnDate'") }} as txn_date,
        {{ iso_date("payload ->> 'DueDate'") }} as due_date,
        payload -> 'CustomerRef' ->> 'value' as customer_id,
        nullif(btrim(payload -> 'CustomerRef' ->> 'name'), '') as customer_name,
        -- null when the company does not use multicurrency; the home currency applies then
        upper(payload -> 'CurrencyRef' ->> 'value') as currency,
        -- TotalAmt and Balance are JSON numbers in major units
        {{ to_minor_units("payload ->> 'TotalAmt'", "payload -> 'CurrencyRef' ->> 'value'") }} as total_amount_minor,
        {{ to_minor_units("payload ->> 'Balance'", "payload -> 'CurrencyRef' ->> 'value'") }} as balance_minor,
        {{ iso_timestamp("payload -> 'MetaData' ->> 'LastUpdatedTime'") }} as last_updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
