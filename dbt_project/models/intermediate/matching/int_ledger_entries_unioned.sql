{#-
    A full rebuild each run: the ledger is a tenth of the history, and whether an entry is open
    changes in place (an invoice paid, a vendor deactivated). int_source_records_rematched finds
    the entries that changed from their staging rows' stamps. Open invoices also get their point
    on amount blocking's plane (macros/amount_date_plane.sql), indexed for the nearest-invoice
    search of int_match_candidates_blocked.
-#}
{{
    config(
        indexes=[
            {'columns': ['workspace_id', 'candidate_type', 'candidate_id'], 'unique': true},
            {'columns': ['amount_date_location'], 'type': 'gist'},
        ],
    )
}}

with

vendors as (
    select
        workspace_id,
        vendor_id,
        display_name,
        currency,
        is_active
    from {{ ref('stg_quickbooks__vendors') }}
),

invoices as (
    select
        workspace_id,
        invoice_id,
        doc_number,
        txn_date,
        customer_id,
        customer_name,
        currency,
        balance_minor
    from {{ ref('stg_quickbooks__invoices') }}
),

customers as (
    select
        workspace_id,
        customer_id,
        display_name
    from {{ ref('stg_quickbooks__customers') }}
),

workspaces as (
    select
        workspace_id,
        home_currency
    from {{ ref('stg_ops__workspaces') }}
),

-- inactive vendors are QuickBooks' deleted ones: nothing should be booked against them
vendor_entries as (
    select
        vendors.workspace_id,
        'vendor' as candidate_type,
        vendors.vendor_id as candidate_id,
        vendors.display_name as candidate_name,
        null::bigint as amount_minor,
        coalesce(vendors.currency, workspaces.home_currency) as currency,
        null::date as entry_on,
        null::text as reference
    from vendors
    left join workspaces
        on vendors.workspace_id = workspaces.workspace_id
    where vendors.is_active
),

open_invoice_entries as (
    select
        invoices.workspace_id,
        'invoice' as candidate_type,
        invoices.invoice_id as candidate_id,
        coalesce(invoices.customer_name, customers.display_name) as candidate_name,
        case
            when invoices.currency is not null then invoices.balance_minor
            -- without a CurrencyRef staging assumed two decimals; rescale to the home currency
            else round(
                invoices.balance_minor
                * power(10::numeric, {{ currency_exponent('workspaces.home_currency') }} - 2)
            )::bigint
        end as amount_minor,
        coalesce(invoices.currency, workspaces.home_currency) as currency,
        invoices.txn_date as entry_on,
        invoices.doc_number as reference
    from invoices
    left join customers
        on
            invoices.workspace_id = customers.workspace_id
            and invoices.customer_id = customers.customer_id
    left join workspaces
        on invoices.workspace_id = workspaces.workspace_id
    where invoices.balance_minor > 0
),

ledger_entries as (
    select * from vendor_entries
    union all
    select * from open_invoice_entries
),

normalised_entries as (
    select
        workspace_id,
        candidate_type,
        candidate_id,
        candidate_name,
        {{ normalise_name('candidate_name') }} as candidate_name_normalised,
        amount_minor,
        currency,
        entry_on,
        reference
    from ledger_entries
),

keyed_entries as (
    select
        *,
        {{ name_keys('candidate_name_normalised') }} as name_keys,
        coalesce(
            candidate_type = 'invoice' and amount_minor > 0 and currency is not null and entry_on is not null, false
        ) as is_amount_searchable
    from normalised_entries
),

-- the invoices amount blocking can reach, one strip of its plane per workspace and currency
stripped_entries as (
    select
        *,
        case
            when is_amount_searchable
                then dense_rank() over (partition by is_amount_searchable order by workspace_id, currency)
        end as amount_date_strip
    from keyed_entries
),

final as (
    select
        workspace_id,
        candidate_type,
        candidate_id,
        candidate_name,
        candidate_name_normalised,
        amount_minor,
        currency,
        entry_on,
        reference,
        name_keys,
        amount_date_strip,
        case
            when is_amount_searchable
                then {{ amount_date_location('amount_minor', 'entry_on', 'amount_date_strip') }}
        end as amount_date_location
    from stripped_entries
)

select * from final
