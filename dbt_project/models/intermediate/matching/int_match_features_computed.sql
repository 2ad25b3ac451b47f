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
        reference
    from {{ ref('int_source_records_unioned') }}
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
        reference
    from {{ ref('int_ledger_entries_unioned') }}
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
        -- record minus candidate: positive when the record is larger
        source_records.amount_minor - ledger_entries.amount_minor as amount_diff_minor,
        abs(source_records.amount_minor - ledger_entries.amount_minor)::numeric
        / nullif(abs(ledger_entries.amount_minor), 0) as amount_relative_diff,
        -- days from the ledger entry to the record: positive when the payment follows the invoice
        source_records.occurred_on - ledger_entries.entry_on as date_lag_days,
        coalesce(source_records.currency = ledger_entries.currency, false) as is_currency_match,
        coalesce(
            {{ normalise_reference('source_records.reference') }}
            = {{ normalise_reference('ledger_entries.reference') }},
            false
        ) as is_reference_match,
        source_records.counterparty_name_normalised is not null as has_counterparty_name,
        candidate_pairs.is_name_blocked,
        candidate_pairs.is_amount_blocked
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
)

select * from final
