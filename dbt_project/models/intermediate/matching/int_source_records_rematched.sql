{#-
    The records whose candidates (or their features) may have changed since this model's last
    build, each stamped with this build's snapshot xmin; the models keyed on the record
    downstream rebuild the records stamped since their own last build
    (macros/incremental_matching.sql). A full build stamps every record. The rule, one CTE each
    below, is in the yml. The pairs blocking kept at its last build are read from its table
    directly, not through ref(): that model is built after this one, from this one.
-#}
{%- set since = last_build_snapshot_xmin('rematched_snapshot_xmin') -%}
{%- set kept_pairs = adapter.get_relation(
    database=this.database, schema=this.schema, identifier='int_match_candidates_blocked'
) if execute and is_restaging() else none -%}
{%- set amount_tolerance = var('blocking_amount_tolerance') -%}
{#- how far on amount blocking looks for any payment: its initials key looks further -#}
{%- set reach_tolerance = [amount_tolerance, var('blocking_initials_amount_tolerance')] | max -%}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['workspace_id', 'source', 'source_record_id'],
        on_schema_change='fail',
        indexes=[
            {'columns': ['workspace_id', 'source', 'source_record_id'], 'unique': true},
            {'columns': ['rematched_snapshot_xmin']},
        ],
    )
}}

-- depends_on: {{ ref('int_ledger_entries_unioned') }}
-- depends_on: {{ ref('int_ledger_name_keys_counted') }}
-- depends_on: {{ ref('stg_quickbooks__vendors') }}
-- depends_on: {{ ref('stg_quickbooks__invoices') }}
-- depends_on: {{ ref('stg_quickbooks__customers') }}
-- depends_on: {{ ref('stg_ops__review_actions') }}
-- depends_on: {{ ref('stg_ops__exchange_rates') }}

with

source_records as not materialized (
    select
        workspace_id,
        source,
        source_record_id,
        candidate_type,
        counterparty_name_normalised,
        name_keys,
        amount_minor,
        currency,
        occurred_on,
        built_snapshot_xmin
    from {{ ref('int_source_records_unioned') }}
),

{% if is_restaging() and kept_pairs is not none -%}

ledger_entries as (
    select
        workspace_id,
        candidate_type,
        candidate_id,
        candidate_name_normalised,
        name_keys,
        amount_minor,
        currency,
        entry_on
    from {{ ref('int_ledger_entries_unioned') }}
),

ledger_name_keys as (
    select
        workspace_id,
        candidate_type,
        name_key,
        is_selective,
        selectivity_changed_snapshot_xmin
    from {{ ref('int_ledger_name_keys_counted') }}
),

review_actions as not materialized (
    select
        workspace_id,
        source,
        source_record_id,
        candidate_type,
        candidate_id,
        is_link,
        changed_xid
    from {{ ref('stg_ops__review_actions') }}
),

kept_pairs as not materialized (
    select
        workspace_id,
        source,
        source_record_id,
        candidate_type,
        candidate_id,
        is_confirmed_link
    from {{ kept_pairs }}
),

-- new records, and records with a new version or a renamed customer
restaged_records as (
    select
        workspace_id,
        source,
        source_record_id
    from source_records
    where built_snapshot_xmin >= {{ since }}
),

quickbooks_vendors as (
    select
        workspace_id,
        vendor_id,
        staged_snapshot_xmin
    from {{ ref('stg_quickbooks__vendors') }}
),

quickbooks_invoices as (
    select
        workspace_id,
        invoice_id,
        customer_id,
        staged_snapshot_xmin
    from {{ ref('stg_quickbooks__invoices') }}
),

quickbooks_customers as (
    select
        workspace_id,
        customer_id,
        staged_snapshot_xmin
    from {{ ref('stg_quickbooks__customers') }}
),

exchange_rates as (
    select
        workspace_id,
        source_currency,
        rate_date,
        changed_xid
    from {{ ref('stg_ops__exchange_rates') }}
),

-- ledger entries restaged since: new, renamed, re-priced, closed or deactivated
changed_entries as (
    select
        workspace_id,
        'vendor' as candidate_type,
        vendor_id as candidate_id
    from quickbooks_vendors
    where staged_snapshot_xmin >= {{ since }}
    union
    select
        workspace_id,
        'invoice' as candidate_type,
        invoice_id as candidate_id
    from quickbooks_invoices
    where staged_snapshot_xmin >= {{ since }}
    union
    -- an invoice without a customer name of its own is named after its customer
    select
        quickbooks_invoices.workspace_id,
        'invoice' as candidate_type,
        quickbooks_invoices.invoice_id as candidate_id
    from quickbooks_invoices
    inner join quickbooks_customers
        on
            quickbooks_invoices.workspace_id = quickbooks_customers.workspace_id
            and quickbooks_invoices.customer_id = quickbooks_customers.customer_id
    where quickbooks_customers.staged_snapshot_xmin >= {{ since }}
),

-- records whose kept candidates include a changed entry (it may be gone, or its fields moved)
records_of_changed_entries as (
    select
        kept_pairs.workspace_id,
        kept_pairs.source,
        kept_pairs.source_record_id
    from kept_pairs
    inner join changed_entries
        on
            kept_pairs.workspace_id = changed_entries.workspace_id
            and kept_pairs.candidate_type = changed_entries.candidate_type
            and kept_pairs.candidate_id = changed_entries.candidate_id
),

-- the changed entries still in the ledger, as they are now
current_changed_entries as (
    select ledger_entries.*
    from ledger_entries
    inner join changed_entries
        on
            ledger_entries.workspace_id = changed_entries.workspace_id
            and ledger_entries.candidate_type = changed_entries.candidate_type
            and ledger_entries.candidate_id = changed_entries.candidate_id
),

-- name keys that now reach a changed entry, and keys that became selective or stopped being so
touched_name_keys as (
    select
        ledger_name_keys.workspace_id,
        ledger_name_keys.candidate_type,
        ledger_name_keys.name_key
    from current_changed_entries
    cross join lateral unnest({{ name_key_array('current_changed_entries.name_keys') }}) as changed_key (name_key)
    inner join ledger_name_keys
        on
            current_changed_entries.workspace_id = ledger_name_keys.workspace_id
            and current_changed_entries.candidate_type = ledger_name_keys.candidate_type
            and changed_key.name_key = ledger_name_keys.name_key
    where ledger_name_keys.is_selective
    union
    select
        workspace_id,
        candidate_type,
        name_key
    from ledger_name_keys
    where selectivity_changed_snapshot_xmin >= {{ since }}
),

records_of_touched_name_keys as (
    select
        source_records.workspace_id,
        source_records.source,
        source_records.source_record_id
    from source_records
    where
        -- the records' GIN index finds the candidates; the join below keeps each workspace's own
        {{ name_key_array('source_records.name_keys') }}
        && (
            select coalesce(array_agg(touched_name_keys.name_key), '{}') as name_keys
            from touched_name_keys
        )
        and exists (
            select
            from touched_name_keys
            where
                touched_name_keys.workspace_id = source_records.workspace_id
                and touched_name_keys.candidate_type = source_records.candidate_type
                and touched_name_keys.name_key = any({{ name_key_array('source_records.name_keys') }})
        )
),

-- Square records a changed open invoice now reaches on amount and date (blocking's window): within
-- the amount key's tolerance, or the initials key's for a record named with the same initials
records_in_reach_of_changed_invoices as (
    select
        source_records.workspace_id,
        source_records.source,
        source_records.source_record_id
    from current_changed_entries
    inner join source_records
        on
            current_changed_entries.workspace_id = source_records.workspace_id
            and current_changed_entries.currency = source_records.currency
            and source_records.amount_minor
            between current_changed_entries.amount_minor * (1 - {{ reach_tolerance }})
            and current_changed_entries.amount_minor * (1 + {{ reach_tolerance }})
            and source_records.occurred_on
            between current_changed_entries.entry_on - {{ var('blocking_days_after_payment') }}
            and current_changed_entries.entry_on + {{ var('blocking_days_before_payment') }}
    where
        current_changed_entries.candidate_type = 'invoice'
        and source_records.candidate_type = 'invoice'
        and (
            abs(source_records.amount_minor - current_changed_entries.amount_minor)
            <= {{ amount_tolerance }} * current_changed_entries.amount_minor::double precision
            or {{ name_initials('source_records.counterparty_name_normalised') }}
            = {{ name_initials('current_changed_entries.candidate_name_normalised') }}
        )
),

-- records whose reviewer verdicts bear on confirmed links: a new verdict, a restaged record with
-- a link (its name may have changed), a link to a changed entry (it may have closed or reopened)
verdict_records as (
    select
        workspace_id,
        source,
        source_record_id
    from review_actions
    where changed_xid >= {{ since }}
    union
    select
        review_actions.workspace_id,
        review_actions.source,
        review_actions.source_record_id
    from review_actions
    inner join restaged_records
        on
            review_actions.workspace_id = restaged_records.workspace_id
            and review_actions.source = restaged_records.source
            and review_actions.source_record_id = restaged_records.source_record_id
    where review_actions.is_link
    union
    select
        review_actions.workspace_id,
        review_actions.source,
        review_actions.source_record_id
    from review_actions
    inner join changed_entries
        on
            review_actions.workspace_id = changed_entries.workspace_id
            and review_actions.candidate_type = changed_entries.candidate_type
            and review_actions.candidate_id = changed_entries.candidate_id
    where review_actions.is_link
),

-- records named as a verdict record is now: they may gain its confirmed entry
records_named_like_verdicts as (
    select
        source_records.workspace_id,
        source_records.source,
        source_records.source_record_id
    from verdict_records
    inner join source_records as verdict_names
        on
            verdict_records.workspace_id = verdict_names.workspace_id
            and verdict_records.source = verdict_names.source
            and verdict_records.source_record_id = verdict_names.source_record_id
    inner join source_records
        on
            verdict_names.workspace_id = source_records.workspace_id
            and verdict_names.source = source_records.source
            and verdict_names.counterparty_name_normalised = source_records.counterparty_name_normalised
),

-- records holding a confirmed link to any entry a verdict record was ever linked to: they may
-- lose it (a later refusal, another link, a renamed record)
records_confirmed_to_verdict_entries as (
    select
        kept_pairs.workspace_id,
        kept_pairs.source,
        kept_pairs.source_record_id
    from verdict_records
    inner join review_actions
        on
            verdict_records.workspace_id = review_actions.workspace_id
            and verdict_records.source = review_actions.source
            and verdict_records.source_record_id = review_actions.source_record_id
    inner join kept_pairs
        on
            review_actions.workspace_id = kept_pairs.workspace_id
            and review_actions.source = kept_pairs.source
            and review_actions.candidate_type = kept_pairs.candidate_type
            and review_actions.candidate_id = kept_pairs.candidate_id
    where
        review_actions.is_link
        and kept_pairs.is_confirmed_link
),

-- records in a currency whose rate into the home currency changed on or before their date
records_of_changed_rates as (
    select
        source_records.workspace_id,
        source_records.source,
        source_records.source_record_id
    from exchange_rates
    inner join source_records
        on
            exchange_rates.workspace_id = source_records.workspace_id
            and exchange_rates.source_currency = source_records.currency
            and exchange_rates.rate_date <= source_records.occurred_on
    where exchange_rates.changed_xid >= {{ since }}
),

rematched_records as (
    select * from restaged_records
    union
    select * from records_of_changed_entries
    union
    select * from records_of_touched_name_keys
    union
    select * from records_in_reach_of_changed_invoices
    union
    select * from records_named_like_verdicts
    union
    select * from records_confirmed_to_verdict_entries
    union
    select * from records_of_changed_rates
),

{%- else %}

-- a full build (or one with no pairs kept yet): every record
rematched_records as (
    select
        workspace_id,
        source,
        source_record_id
    from source_records
),

{%- endif %}

final as (
    select
        workspace_id,
        source,
        source_record_id,
        {{ staged_snapshot_xmin() }} as rematched_snapshot_xmin
    from rematched_records
)

select * from final
