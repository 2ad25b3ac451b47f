{#-
    Typed reads of JSON text values that tolerate a malformed value (null) instead of failing the
    whole staging view: payloads are stored exactly as the APIs sent them.
-#}

{% macro iso_date(text_value) -%}
    case when {{ text_value }} ~ '^\d{4}-\d{2}-\d{2}' then left({{ text_value }}, 10)::date end
{%- endmacro %}


{% macro iso_timestamp(text_value) -%}
    case when {{ text_value }} ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}' then ({{ text_value }})::timestamptz end
{%- endmacro %}


{% macro json_boolean(text_value) -%}
    case lower({{ text_value }}) when 'true' then true when 'false' then false end
{%- endmacro %}
