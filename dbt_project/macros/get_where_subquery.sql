{#-
    dbt's own macro, extended: the data tests of the models keyed on the record
    (var('tests_of_the_last_build')) check the rows the last build wrote, not the whole history,
    so a window's tests cost what the window touched. That is complete for them: a build writes
    all the rows of each record it rebuilds (its pre-hook deleted the old ones,
    macros/incremental_matching.sql), so a duplicate or a null can only be in the rows it wrote,
    and a full refresh writes, and tests, every row. An explicit `where` config still wins.
-#}
{% macro get_where_subquery(relation) -%}
    {%- if not config.get('where') and relation.identifier in var('tests_of_the_last_build') -%}
        {%- set written_by_last_build -%}
            (
                select * from {{ relation }}
                where built_snapshot_xmin = (select max(built_snapshot_xmin) from {{ relation }})
            ) as dbt_subquery
        {%- endset -%}
        {%- do return(written_by_last_build) -%}
    {%- endif -%}
    {%- do return(adapter.dispatch('get_where_subquery', 'dbt')(relation)) -%}
{%- endmacro %}
