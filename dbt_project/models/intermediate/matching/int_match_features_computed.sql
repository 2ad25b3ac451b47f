{#-
    compared_amount: the record's amount in the candidate's currency. A record in a foreign
    currency against a home-currency entry is converted (record_home_amounts); without a rate, or
    between two foreign currencies, the amounts are compared as they are and is_currency_match
    says they differ.

    Incremental on the record, like blocking: a build computes the pairs of the records
    int_source_records_rematched stamped since this model's last build, after its pre-hook
    deleted their old rows (macros/incremental_matching.sql).
-#}
{%- set compared_amount -%}
    case
        when
            source_records.currency <> ledger_entries.currency
            and ledger_entries.currency = record_home_amounts.home_currency
            then record_home_amounts.home_amount_minor
        else source_records.amount_minor
    end
{%- endset -%}

{#- Unlogged, like int_match_candidates_blocked and for the same reason. -#}
{{
    config(
        unlogged=true,
        indexes=[
            {'columns': ['workspace_id', 'source', 'source_record_id']},
            {'columns': ['built_snapshot_xmin']},
        ],
    )
}}

-- depends_on: {{ ref('int_source_records_rematched') }}

with

candidate_pairs as (
    select
        workspace_id,
        source,
        source_record_id,
        candidate_type,
        candidate_id,
        is_name_blocked,
        is_amount_blocked
    from {{ ref('int_match_candidates_blocked') }}
    {%- if is_restaging() %}
    where {{ rematched_since_last_build() }}
    {%- endif %}
),

source_records as (
    select
        workspace_id,
        source,
        source_record_id,
        counterparty_name_normalised,
        amount_minor,
        currency,
        occurred_on,
        -- normalised once per record here, not once per pair below
        {{ normalise_reference('reference') }} as reference_normalised
    from {{ ref('int_source_records_unioned') }}
    {%- if is_restaging() %}
    where {{ rematched_since_last_build() }}
    {%- endif %}
),

ledger_entries as (
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
        {{ normalise_reference('reference') }} as reference_normalised
    from {{ ref('int_ledger_entries_unioned') }}
),

workspaces as (
    select
        workspace_id,
        home_currency
    from {{ ref('stg_ops__workspaces') }}
),

exchange_rates as (
    select
        workspace_id,
        source_currency,
        target_currency,
        rate,
        rate_date
    from {{ ref('stg_ops__exchange_rates') }}
),

-- a record in a foreign currency, converted into the home currency at the latest rate dated on
-- or before the record (QuickBooks' or the workspace's rule, as delivery converts): a charge in
-- dollars can then agree in amount with an invoice in euros
record_home_amounts as (
    select distinct on (source_records.workspace_id, source_records.source, source_records.source_record_id)
        source_records.workspace_id,
        source_records.source,
        source_records.source_record_id,
        workspaces.home_currency,
        round(
            source_records.amount_minor * exchange_rates.rate
            * power(
                10::numeric,
                {{ currency_exponent('workspaces.home_currency') }}
                - {{ currency_exponent('source_records.currency') }}
            )
        )::bigint as home_amount_minor
    from source_records
    inner join workspaces
        on source_records.workspace_id = workspaces.workspace_id
    inner join exchange_rates
        on
            source_records.workspace_id = exchange_rates.workspace_id
            and source_records.currency = exchange_rates.source_currency
            and workspaces.home_currency = exchange_rates.target_currency
            and source_records.occurred_on >= exchange_rates.rate_date
    where source_records.currency <> workspaces.home_currency
    order by
        source_records.workspace_id asc,
        source_records.source asc,
        source_records.source_record_id asc,
        exchange_rates.rate_date desc
),

final as (
    select
        candidate_pairs.workspace_id,
        candidate_pairs.source,
        candidate_pairs.source_record_id,
        candidate_pairs.candidate_type,
        candidate_pairs.candidate_id,
        ledger_entries.candidate_name,
        ledger_entries.candidate_name_normalised,
        ledger_entries.amount_minor as candidate_amount_minor,
        ledger_entries.currency as candidate_currency,
        ledger_entries.entry_on as candidate_entry_on,
        ledger_entries.reference as candidate_reference,
        -- record minus candidate, in the candidate's currency: positive when the record is larger
        {{ compared_amount }} - ledger_entries.amount_minor as amount_diff_minor,
        abs({{ compared_amount }} - ledger_entries.amount_minor)::numeric
        / nullif(abs(ledger_entries.amount_minor), 0) as amount_relative_diff,
        -- days from the ledger entry to the record: positive when the payment follows the invoice
        source_records.occurred_on - ledger_entries.entry_on as date_lag_days,
        coalesce(source_records.currency = ledger_entries.currency, false) as is_currency_match,
        coalesce(
            source_records.reference_normalised = ledger_entries.reference_normalised, false
        ) as is_reference_match,
        source_records.counterparty_name_normalised is not null as has_counterparty_name,
        candidate_pairs.is_name_blocked,
        candidate_pairs.is_amount_blocked,
        {{ staged_snapshot_xmin() }} as built_snapshot_xmin
    from candidate_pairs
    inner join source_records
        on
            candidate_pairs.workspace_id = source_records.workspace_id
            and candidate_pairs.source = source_records.source
            and candidate_pairs.source_record_id = source_records.source_record_id
    inner join ledger_entries
        on
            candidate_pairs.workspace_id = ledger_entries.workspace_id
            and candidate_pairs.candidate_type = ledger_entries.candidate_type
            and candidate_pairs.candidate_id = ledger_entries.candidate_id
    left join record_home_amounts
        on
            candidate_pairs.workspace_id = record_home_amounts.workspace_id
            and candidate_pairs.source = record_home_amounts.source
            and candidate_pairs.source_record_id = record_home_amounts.source_record_id
)

select * from final
