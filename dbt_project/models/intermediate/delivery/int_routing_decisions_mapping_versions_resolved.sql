-- The field-mapping version in effect when each record was reconciled: the latest version whose
-- validity starts at or before the decision (version 0, the built-in default, before any).
with

routing_decisions as (
    select
        decision_id,
        workspace_id,
        decided_at
    from {{ ref('stg_ops__routing_decisions') }}
),

field_mappings as (
    select
        workspace_id,
        mapping_version,
        valid_from
    from {{ ref('stg_ops__field_mappings') }}
),

mapping_validity as (
    select
        workspace_id,
        mapping_version,
        valid_from,
        lead(valid_from) over (partition by workspace_id order by valid_from) as valid_to
    from field_mappings
),

final as (
    select
        routing_decisions.decision_id,
        routing_decisions.workspace_id,
        routing_decisions.decided_at,
        coalesce(mapping_validity.mapping_version, 0) as mapping_version,
        mapping_validity.valid_from as mapping_valid_from
    from routing_decisions
    left join mapping_validity
        on
            routing_decisions.workspace_id = mapping_validity.workspace_id
            and routing_decisions.decided_at >= mapping_validity.valid_from
            and (mapping_validity.valid_to is null or routing_decisions.decided_at < mapping_validity.valid_to)
)

select * from final
