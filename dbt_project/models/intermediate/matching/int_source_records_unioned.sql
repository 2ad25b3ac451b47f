{#-
    Incremental on the record: a build re-unions only the records their staging model restaged
    since this model's last build (a payment is restaged when its customer changed, so its
    counterparty name follows). Records are never removed from staging, so none is removed here.
-#}
{%- set since = last_build_snapshot_xmin('built_snapshot_xmin') -%}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['workspace_id', 'source', 'source_record_id'],
        on_schema_change='fail',
        indexes=[
            {'columns': ['workspace_id', 'source', 'source_record_id'], 'unique': true},
            {'columns': ['built_snapshot_xmin']},
            {'columns': ["(" ~ name_key_array('name_keys') ~ ")"], 'type': 'gin'},
            {'columns': ['workspace_id', 'currency', 'amount_minor']},
            {'columns': ['workspace_id', 'source', 'counterparty_name_normalised']},
        ],
    )
}}

with

supplier_invoices as (
    select
        workspace_id,
        supplier_invoice_id,
        source_payload_sha256,
        invoice_status,
        supplier_name,
        invoice_number,
        total_amount_minor,
        currency,
        issue_date,
        attachment_id
    from {{ ref('stg_qonto__supplier_invoices') }}
    {%- if is_restaging() %}
    where staged_snapshot_xmin >= {{ since }}
    {%- endif %}
),

payments as (
    select
        workspace_id,
        payment_id,
        source_payload_sha256,
        payment_status,
        amount_minor,
        currency,
        reference_id,
        customer_id,
        created_at,
        is_fully_refunded
    from {{ ref('stg_square__payments') }}
    {%- if is_restaging() %}
    where staged_snapshot_xmin >= {{ since }}
    {%- endif %}
),

customers as (
    select
        workspace_id,
        customer_id,
        given_name,
        family_name,
        company_name
    from {{ ref('stg_square__customers') }}
),

qonto_records as (
    select
        workspace_id,
        'qonto' as source,
        supplier_invoice_id as source_record_id,
        source_payload_sha256,
        invoice_status as record_status,
        supplier_name as counterparty_name,
        total_amount_minor as amount_minor,
        currency,
        issue_date as occurred_on,
        invoice_number as reference,
        attachment_id,
        -- a rejected or discarded document is not a bill to book
        coalesce(invoice_status not in ('rejected', 'discarded'), true) as is_reconcilable,
        false as is_fully_refunded
    from supplier_invoices
),

square_records as (
    select
        payments.workspace_id,
        'square' as source,
        payments.payment_id as source_record_id,
        payments.source_payload_sha256,
        payments.payment_status as record_status,
        coalesce(
            customers.company_name,
            nullif(concat_ws(' ', customers.given_name, customers.family_name), '')
        ) as counterparty_name,
        payments.amount_minor,
        payments.currency,
        (payments.created_at at time zone 'UTC')::date as occurred_on,
        payments.reference_id as reference,
        null::text as attachment_id,
        -- a canceled or failed charge moved no money
        coalesce(payments.payment_status not in ('CANCELED', 'FAILED'), true) as is_reconcilable,
        -- the money went back: matched or not, it is not a charge to book without a person
        coalesce(payments.is_fully_refunded, false) as is_fully_refunded
    from payments
    left join customers
        on
            payments.workspace_id = customers.workspace_id
            and payments.customer_id = customers.customer_id
),

source_records as (
    select * from qonto_records
    union all
    select * from square_records
),

normalised_records as (
    select
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        record_status,
        counterparty_name,
        {{ normalise_name('counterparty_name') }} as counterparty_name_normalised,
        amount_minor,
        currency,
        occurred_on,
        reference,
        attachment_id,
        is_reconcilable,
        is_fully_refunded
    from source_records
),

final as (
    select
        *,
        -- which kind of ledger entry each source is matched against
        case source
            when 'qonto' then 'vendor'
            when 'square' then 'invoice'
        end as candidate_type,
        {{ name_keys('counterparty_name_normalised') }} as name_keys,
        {{ staged_snapshot_xmin() }} as built_snapshot_xmin
    from normalised_records
)

select * from final
