{#-
    An invoice number or payment reference reduced to its letters and digits, lower case, so
    "INV-0042", "inv 0042" and "Inv/0042" agree. Empty is null.
-#}
{% macro normalise_reference(reference) -%}
    nullif(regexp_replace(lower({{ reference }}), '[^a-z0-9]+', '', 'g'), '')
{%- endmacro %}
