{#-
    Incremental on the record: a build writes the rows of the records int_source_records_rematched
    stamped since this model's last build, after its pre-hook deleted their old rows
    (macros/incremental_matching.sql); `dbt build --full-refresh` rebuilds every record.
-#}
{{
    config(
        indexes=[
            {'columns': ['workspace_id', 'source', 'source_record_id']},
            {'columns': ['built_snapshot_xmin']},
        ],
    )
}}

-- depends_on: {{ ref('int_source_records_rematched') }}

with

source_records as (
    select
        workspace_id,
        source,
        source_record_id,
        source_payload_sha256,
        counterparty_name,
        counterparty_name_normalised,
        amount_minor,
        currency,
        occurred_on,
        reference,
        is_fully_refunded
    from {{ ref('int_source_records_unioned') }}
    {%- if is_restaging() %}
    where {{ rematched_since_last_build() }}
    {%- endif %}
),

match_features as (
    select
        workspace_id,
        source,
        source_record_id,
        candidate_type,
        candidate_id,
        candidate_name,
        candidate_name_normalised,
        candidate_amount_minor,
        candidate_currency,
        candidate_entry_on,
        candidate_reference,
        amount_diff_minor,
        date_lag_days,
        is_currency_match,
        is_reference_match
    from {{ ref('int_match_features_computed') }}
    {%- if is_restaging() %}
    where {{ rematched_since_last_build() }}
    {%- endif %}
),

-- every source record at least once: one row with null candidate columns when blocking found
-- nothing, so the scorer still decides (and refuses) it
final as (
    select
        md5(
            source_records.workspace_id
            || '|' || source_records.source
            || '|' || source_records.source_record_id
            || '|' || coalesce(match_features.candidate_id, '')
        ) as match_pair_id,
        source_records.workspace_id,
        source_records.source,
        source_records.source_record_id,
        source_records.source_payload_sha256,
        source_records.counterparty_name as record_counterparty_name,
        source_records.counterparty_name_normalised as record_counterparty_name_normalised,
        source_records.amount_minor as record_amount_minor,
        source_records.currency as record_currency,
        source_records.occurred_on as record_occurred_on,
        source_records.reference as record_reference,
        source_records.is_fully_refunded as record_is_fully_refunded,
        match_features.candidate_type,
        match_features.candidate_id,
        match_features.candidate_name,
        match_features.candidate_name_normalised,
        match_features.candidate_amount_minor,
        match_features.candidate_currency,
        match_features.candidate_entry_on,
        match_features.candidate_reference,
        match_features.amount_diff_minor,
        match_features.date_lag_days,
        match_features.is_currency_match,
        match_features.is_reference_match,
        {{ staged_snapshot_xmin() }} as built_snapshot_xmin
    from source_records
    left join match_features
        on
            source_records.workspace_id = match_features.workspace_id
            and source_records.source = match_features.source
            and source_records.source_record_id = match_features.source_record_id
)

select * from final
