{{
    config(
        unique_key=['workspace_id', 'supplier_invoice_id'],
        indexes=[
            {'columns': ['workspace_id', 'supplier_invoice_id'], 'unique': true},
            {'columns': ['staged_snapshot_xmin']},
        ],
    )
}}

with

supplier_invoice_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        source_updated_at,
        landed_at
    from {{ source('qonto', 'supplier_invoices') }}
    {{ records_landed_since_last_build(source('qonto', 'supplier_invoices')) }}
),

-- raw is append-only: keep the latest content of each invoice
latest_versions as (
    {{ latest_version_per_record('supplier_invoice_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as supplier_invoice_id,
        payload_sha256 as source_payload_sha256,
        payload ->> 'status' as invoice_status,
        nullif(btrim(payload ->> 'supplier_name'), '') as supplier_name,
        nullif(btrim(payload ->> 'invoice_number'), '') as invoice_number,
        upper(payload -> 'total_amount' ->> 'currency') as currency,
        {{ to_minor_units(
            "payload -> 'total_amount' ->> 'value'",
            "payload -> 'total_amount' ->> 'currency'",
        ) }} as total_amount_minor,
        {{ to_minor_units(
            "payload -> 'total_amount_excluding_taxes' ->> 'value'",
            "payload -> 'total_amount_excluding_taxes' ->> 'currency'",
        ) }} as total_amount_excluding_taxes_minor,
        {{ to_minor_units(
            "payload -> 'total_tax_amount' ->> 'value'",
            "payload -> 'total_tax_amount' ->> 'currency'",
        ) }} as total_tax_amount_minor,
        {{ iso_date("payload ->> 'issue_date'") }} as issue_date,
        {{ iso_date("payload ->> 'due_date'") }} as due_date,
        nullif(payload ->> 'attachment_id', '') as attachment_id,
        payload ->> 'file_name' as file_name,
        nullif(replace(payload ->> 'iban', ' ', ''), '') as iban,
        coalesce({{ json_boolean("payload ->> 'has_duplicates'") }}, false) as has_duplicates,
        coalesce({{ json_boolean("payload ->> 'is_credit_note'") }}, false) as is_credit_note,
        {{ iso_timestamp("payload ->> 'created_at'") }} as created_at,
        {{ iso_timestamp("payload ->> 'updated_at'") }} as updated_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
