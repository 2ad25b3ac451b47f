{#-
    Blocking: the few ledger entries worth scoring for each source record, found by equality
    joins on small key tables and index searches (never a cross join), so the work per record
    stays flat as the ledger grows.

    - Qonto supplier invoices pair with active vendors, Square payments with open invoices,
      always within one workspace.
    - Name key: the first four characters of each normalised name token of three or more
      characters. Equal tokens share it, and so do a full token and its truncation
      ("INTERNATIONAL BUSINESS MACH" / "machines"). A key shared by more than
      var('blocking_max_candidates_per_key') ledger entries narrows nothing and is skipped.
    - Amount key (Square only): same currency, the invoice balance within
      var('blocking_amount_tolerance') of the payment amount and the invoice date between
      var('blocking_days_before_payment') days before and var('blocking_days_after_payment')
      days after the payment (the window). Only the
      var('blocking_max_amount_candidates_per_record') closest are kept: relative amount
      difference over the tolerance plus days apart over the window before the payment, both in
      0..1 (ties by id). They are found by two searches of a GiST index on the invoices' points
      (amount, date) rather than by joining every invoice of similar amount in all of history,
      so a payment costs about what it keeps, however busy the ledger (macros/amount_date_plane.sql).
    - Initials key (Square only): an invoice whose name starts with the same two initials as the
      record's, in the window, within the wider var('blocking_initials_amount_tolerance') of the
      payment, is kept beside the amount key's cap: the
      var('blocking_max_initials_candidates_per_record') closest (same closeness, ties by id).
      Names of initials only ("J M L") have no token long enough for a name key, so without this
      their entry could be crowded out by the amount key's cap, or be lost when fees or FX moved
      the amount more than var('blocking_amount_tolerance'): agreeing initials are evidence
      enough to look further on amount.
    - Confirmed links: an entry a reviewer accepted or pinned (their latest word on that record)
      for a record of the same normalised counterparty name is always a candidate, however
      differently the entry is named: the scorer weighs it as strong evidence
      (confirmed_before), which it can only do for a pair blocking kept.

    Incremental on the record: a build blocks only the records int_source_records_rematched
    stamped since this model's last build, against the whole ledger, after its pre-hook deleted
    their old pairs (macros/incremental_matching.sql).
-#}
{%- set amount_cap = var('blocking_max_amount_candidates_per_record') -%}
{%- set initials_tolerance = var('blocking_initials_amount_tolerance') -%}
{%- set initials_cap = var('blocking_max_initials_candidates_per_record') -%}

{#- An entry's pairs are found through a hash index: its build hashes two million ids where a
    btree's sorts them, at three times the cost. Unlogged: the table is derived, and when a crash
    empties it, it has no build stamp left, so the next build blocks every record again
    (macros/incremental_matching.sql). -#}
{{
    config(
        unlogged=true,
        indexes=[
            {'columns': ['workspace_id', 'source', 'source_record_id']},
            {'columns': ['candidate_id'], 'type': 'hash'},
            {'columns': ['built_snapshot_xmin']},
        ],
    )
}}

{#- The searches below want the GiST index scan that returns invoices nearest first and stops
    at the cap; the planner, which cannot estimate how many invoices a box holds, would otherwise
    often collect the whole window with a bitmap scan and sort it, which costs what the window
    holds. -#}
{% call set_sql_header(config) %}
    set local enable_bitmapscan = off;
{% endcall %}

-- depends_on: {{ ref('int_source_records_rematched') }}

with

source_records as not materialized (
    select
        workspace_id,
        source,
        source_record_id,
        counterparty_name_normalised,
        amount_minor,
        currency,
        occurred_on,
        is_reconcilable,
        candidate_type,
        name_keys
    from {{ ref('int_source_records_unioned') }}
),

-- the records this build blocks
rematched_records as (
    select *
    from source_records
    {%- if is_restaging() %}
    where {{ rematched_since_last_build() }}
    {%- endif %}
),

ledger_entries as (
    select
        workspace_id,
        candidate_type,
        candidate_id,
        candidate_name_normalised,
        amount_minor,
        currency,
        entry_on,
        name_keys,
        amount_date_location,
        {{ name_initials('candidate_name_normalised') }} as initials_key,
        -- the pairs are grouped on (record_number, entry_number), two integers, and named at the end
        row_number() over (order by workspace_id, candidate_type, candidate_id) as entry_number
    from {{ ref('int_ledger_entries_unioned') }}
),

-- the open invoices on amount blocking's plane, read through its GiST index (not materialized,
-- so each lateral search below is an index scan)
located_invoices as not materialized (
    select
        workspace_id,
        candidate_id,
        amount_minor,
        currency,
        entry_on,
        amount_date_location
    from {{ ref('int_ledger_entries_unioned') }}
    where amount_date_location is not null
),

amount_date_strips as (
    select distinct
        workspace_id,
        currency,
        amount_date_strip
    from {{ ref('int_ledger_entries_unioned') }}
    where amount_date_strip is not null
),

ledger_name_keys as (
    select
        workspace_id,
        candidate_type,
        name_key,
        is_selective
    from {{ ref('int_ledger_name_keys_counted') }}
),

review_actions as (
    select
        workspace_id,
        source,
        source_record_id,
        candidate_type,
        candidate_id,
        is_link,
        acted_at,
        action_id
    from {{ ref('stg_ops__review_actions') }}
),

reconcilable_records as (
    select
        workspace_id,
        source,
        source_record_id,
        counterparty_name_normalised,
        amount_minor,
        currency,
        occurred_on,
        {{ name_initials('counterparty_name_normalised') }} as initials_key,
        candidate_type,
        name_keys,
        row_number() over (order by workspace_id, source, source_record_id) as record_number
    from rematched_records
    where is_reconcilable
),

record_name_keys as (
    select
        workspace_id,
        record_number,
        candidate_type,
        unnest({{ name_key_array('name_keys') }}) as name_key
    from reconcilable_records
),

ledger_entry_name_keys as (
    select
        workspace_id,
        candidate_type,
        entry_number,
        unnest({{ name_key_array('name_keys') }}) as name_key
    from ledger_entries
),

selective_name_keys as (
    select
        workspace_id,
        candidate_type,
        name_key
    from ledger_name_keys
    where is_selective
),

name_blocked_pairs as (
    select distinct
        record_name_keys.record_number,
        ledger_entry_name_keys.entry_number
    from record_name_keys
    inner join selective_name_keys
        on
            record_name_keys.workspace_id = selective_name_keys.workspace_id
            and record_name_keys.candidate_type = selective_name_keys.candidate_type
            and record_name_keys.name_key = selective_name_keys.name_key
    inner join ledger_entry_name_keys
        on
            selective_name_keys.workspace_id = ledger_entry_name_keys.workspace_id
            and selective_name_keys.candidate_type = ledger_entry_name_keys.candidate_type
            and selective_name_keys.name_key = ledger_entry_name_keys.name_key
),

-- the amount key's payments, placed on the invoices' plane (macros/amount_date_plane.sql)
amount_searched_records as (
    select
        reconcilable_records.workspace_id,
        reconcilable_records.record_number,
        reconcilable_records.amount_minor,
        reconcilable_records.currency,
        reconcilable_records.occurred_on,
        {{ amount_date_location(
            'reconcilable_records.amount_minor',
            'reconcilable_records.occurred_on',
            'amount_date_strips.amount_date_strip',
        ) }} as amount_date_location
    from reconcilable_records
    inner join amount_date_strips
        on
            reconcilable_records.workspace_id = amount_date_strips.workspace_id
            and reconcilable_records.currency = amount_date_strips.currency
    where
        reconcilable_records.source = 'square'
        and reconcilable_records.candidate_type = 'invoice'
        and reconcilable_records.amount_minor > 0
        and reconcilable_records.occurred_on is not null
),

-- Each payment's closest invoices come from two index searches of the plane, so a payment costs
-- about the candidates it keeps, however many invoices of its currency history holds. First the
-- cap's worth of window invoices nearest on the plane (straight-line distance): the farthest of
-- them (by amount_date_distance) bounds how far the closest ones can be; with fewer than the cap
-- in the window there is no bound, the whole window. The bound is taken inside each search, so
-- the two million invoices found are never sorted to be grouped by payment.
amount_search_radii as (
    select
        amount_searched_records.*,
        case
            when nearest_invoices.invoice_count = {{ amount_cap }} then nearest_invoices.farthest_distance
            else 'infinity'
        end as search_radius
    from amount_searched_records
    cross join lateral (  -- noqa: ST05
        select
            count(*) as invoice_count,
            max(nearest_on_plane.amount_date_distance) as farthest_distance
        -- the cap's nearest, then their count and farthest (a subquery: a CTE cannot see the payment)
        from (  -- noqa: ST05
            select {{ amount_date_distance('amount_searched_records', 'located_invoices') }} as amount_date_distance
            from located_invoices
            where
                located_invoices.amount_date_location <@ {{ amount_date_search_box(
                    'amount_searched_records', 'amount_searched_records.amount_date_location', 1
                ) }}
                and located_invoices.workspace_id = amount_searched_records.workspace_id
                and located_invoices.currency = amount_searched_records.currency
                and {{ is_in_amount_date_window('amount_searched_records', 'located_invoices') }}
            order by located_invoices.amount_date_location <-> amount_searched_records.amount_date_location
            limit {{ amount_cap }}
        ) as nearest_on_plane
    ) as nearest_invoices
),

-- then every window invoice within that bound, the closest kept: exactly the cap's closest
amount_closest_invoices as (
    select
        amount_search_radii.workspace_id,
        amount_search_radii.record_number,
        closest_invoices.candidate_id
    from amount_search_radii
    cross join lateral (
        select located_invoices.candidate_id
        from located_invoices
        where
            located_invoices.amount_date_location
            <@ {{ amount_date_search_box(
                'amount_search_radii', 'amount_search_radii.amount_date_location', 'amount_search_radii.search_radius'
            ) }}
            and located_invoices.workspace_id = amount_search_radii.workspace_id
            and located_invoices.currency = amount_search_radii.currency
            and {{ is_in_amount_date_window('amount_search_radii', 'located_invoices') }}
        order by
            {{ amount_date_distance('amount_search_radii', 'located_invoices') }} asc,
            located_invoices.candidate_id asc
        limit {{ amount_cap }}
    ) as closest_invoices
),

amount_closest_pairs as (
    select
        amount_closest_invoices.record_number,
        ledger_entries.entry_number
    from amount_closest_invoices
    inner join ledger_entries
        on
            amount_closest_invoices.workspace_id = ledger_entries.workspace_id
            and ledger_entries.candidate_type = 'invoice'
            and amount_closest_invoices.candidate_id = ledger_entries.candidate_id
),

-- the initials key's bands, t its tolerance: band n holds amounts in [(1 + t)^n, (1 + t)^(n + 1));
-- an invoice within t of a payment sits at most one band below and ceil(-ln(1 - t) / ln(1 + t))
-- bands above the payment's band, and one more band each side absorbs floating-point rounding at
-- the band edges
record_initials_bands as (
    select
        workspace_id,
        record_number,
        amount_minor,
        currency,
        occurred_on,
        initials_key,
        floor(ln(amount_minor::double precision) / ln(1 + {{ initials_tolerance }}))::integer
        + generate_series(
            -2,
            ceil(-ln(1 - {{ initials_tolerance }}) / ln(1 + {{ initials_tolerance }}))::integer + 1
        ) as amount_band
    from reconcilable_records
    where
        source = 'square'
        and candidate_type = 'invoice'
        and amount_minor > 0
        and currency is not null
        and occurred_on is not null
        and initials_key is not null
),

ledger_initials_bands as (
    select
        workspace_id,
        entry_number,
        amount_minor,
        currency,
        entry_on,
        initials_key,
        floor(ln(amount_minor::double precision) / ln(1 + {{ initials_tolerance }}))::integer as amount_band
    from ledger_entries
    where
        amount_date_location is not null
        and initials_key is not null
),

-- the window invoices named with the payment's initials, within the initials key's tolerance
initials_matched_invoices as (
    select
        record_initials_bands.record_number,
        ledger_initials_bands.entry_number,
        row_number() over (
            partition by record_initials_bands.record_number
            order by
                {{ amount_date_distance('record_initials_bands', 'ledger_initials_bands') }} asc,
                ledger_initials_bands.entry_number asc
        ) as closeness_rank
    from record_initials_bands
    inner join ledger_initials_bands
        on
            record_initials_bands.workspace_id = ledger_initials_bands.workspace_id
            and record_initials_bands.currency = ledger_initials_bands.currency
            and record_initials_bands.initials_key = ledger_initials_bands.initials_key
            and record_initials_bands.amount_band = ledger_initials_bands.amount_band
    where {{ is_in_amount_date_window('record_initials_bands', 'ledger_initials_bands', initials_tolerance) }}
),

-- the initials key's cap: its closest, kept beside the amount key's
initials_matched_pairs as (
    select
        record_number,
        entry_number
    from initials_matched_invoices
    where closeness_rank <= {{ initials_cap }}
),

amount_blocked_pairs as (
    select * from amount_closest_pairs
    union all
    select * from initials_matched_pairs
),

latest_verdicts as (
    select distinct on (workspace_id, source, source_record_id)
        workspace_id,
        source,
        source_record_id,
        candidate_type,
        candidate_id,
        is_link
    from review_actions
    order by workspace_id asc, source asc, source_record_id asc, acted_at desc, action_id desc
),

-- the counterparty names reviewers linked to an entry that is still in the ledger
confirmed_names as (
    select distinct
        latest_verdicts.workspace_id,
        latest_verdicts.source,
        latest_verdicts.candidate_type,
        ledger_entries.entry_number,
        source_records.counterparty_name_normalised
    from latest_verdicts
    inner join source_records
        on
            latest_verdicts.workspace_id = source_records.workspace_id
            and latest_verdicts.source = source_records.source
            and latest_verdicts.source_record_id = source_records.source_record_id
    inner join ledger_entries
        on
            latest_verdicts.workspace_id = ledger_entries.workspace_id
            and latest_verdicts.candidate_type = ledger_entries.candidate_type
            and latest_verdicts.candidate_id = ledger_entries.candidate_id
    where
        latest_verdicts.is_link
        and source_records.counterparty_name_normalised is not null
),

confirmed_pairs as (
    select
        reconcilable_records.record_number,
        confirmed_names.entry_number
    from reconcilable_records
    inner join confirmed_names
        on
            reconcilable_records.workspace_id = confirmed_names.workspace_id
            and reconcilable_records.source = confirmed_names.source
            and reconcilable_records.candidate_type = confirmed_names.candidate_type
            and reconcilable_records.counterparty_name_normalised = confirmed_names.counterparty_name_normalised
),

blocked_pairs as (
    select
        record_number,
        entry_number,
        true as is_name_blocked,
        false as is_amount_blocked,
        false as is_confirmed_link
    from name_blocked_pairs
    union all
    select
        record_number,
        entry_number,
        false as is_name_blocked,
        true as is_amount_blocked,
        false as is_confirmed_link
    from amount_blocked_pairs
    union all
    select
        record_number,
        entry_number,
        false as is_name_blocked,
        false as is_amount_blocked,
        true as is_confirmed_link
    from confirmed_pairs
),

-- one row per pair, whichever keys found it: grouped on its two numbers, not five text columns
blocked_pair_numbers as (
    select
        record_number,
        entry_number,
        bool_or(is_name_blocked) as is_name_blocked,
        bool_or(is_amount_blocked) as is_amount_blocked,
        bool_or(is_confirmed_link) as is_confirmed_link
    from blocked_pairs
    group by
        record_number,
        entry_number
),

final as (
    select
        reconcilable_records.workspace_id,
        reconcilable_records.source,
        reconcilable_records.source_record_id,
        ledger_entries.candidate_type,
        ledger_entries.candidate_id,
        blocked_pair_numbers.is_name_blocked,
        blocked_pair_numbers.is_amount_blocked,
        blocked_pair_numbers.is_confirmed_link,
        {{ staged_snapshot_xmin() }} as built_snapshot_xmin
    from blocked_pair_numbers
    inner join reconcilable_records
        on blocked_pair_numbers.record_number = reconcilable_records.record_number
    inner join ledger_entries
        on blocked_pair_numbers.entry_number = ledger_entries.entry_number
)

select * from final
