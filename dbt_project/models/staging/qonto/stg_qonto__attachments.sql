{{
    config(
        unique_key=['workspace_id', 'attachment_id'],
        indexes=[{'columns': ['workspace_id', 'attachment_id'], 'unique': true}],
    )
}}

with

attachment_versions as (
    select
        workspace_id,
        source_record_id,
        payload,
        payload_sha256,
        blob_sha256,
        source_updated_at,
        landed_at
    from {{ source('qonto', 'attachments') }}
    {{ records_landed_since_last_build(source('qonto', 'attachments')) }}
),

-- raw is append-only: keep the latest content of each attachment
latest_versions as (
    {{ latest_version_per_record('attachment_versions') }}
),

final as (
    select
        workspace_id,
        source_record_id as attachment_id,
        payload_sha256 as source_payload_sha256,
        payload ->> 'file_name' as file_name,
        -- Qonto's clients type file_size as a string; accept a string or a number
        case
            when payload ->> 'file_size' ~ '^\d+$' then (payload ->> 'file_size')::bigint
        end as file_size_bytes,
        payload ->> 'file_content_type' as file_content_type,
        blob_sha256,
        {{ iso_timestamp("payload ->> 'created_at'") }} as created_at,
        landed_at,
        {{ staged_snapshot_xmin() }} as staged_snapshot_xmin
    from latest_versions
)

select * from final
