{#-
    Custom schemas are used as they are named (`staging`, `intermediate`, `marts`), not prefixed
    with the target schema: Python code and dashboards read `marts.match_features` by that name.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
