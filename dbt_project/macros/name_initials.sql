{#-
    The initials of a normalised name's first two words ("j m l" -> "jm", "john smith" -> "js"):
    a blocking key that survives a memo cut short after its second word. Null for a null name.
-#}
{% macro name_initials(name) -%}
    nullif(left(regexp_replace({{ name }}, '(\S)\S*\s*', '\1', 'g'), 2), '')
{%- endmacro %}
