{#-
    A normalised name's blocking keys, sorted, without repeats, separated by spaces (text, not
    text[], so dbt unit tests can give and expect them; name_key_array() splits them): the first
    four characters of each token of three or more characters that is not a stop word. Equal
    tokens share a key, and so do a full token and its truncation ("INTERNATIONAL BUSINESS MACH"
    / "machines"). Null when there is none.
-#}
{% macro name_keys(name) -%}
    {%- set stop_tokens = ['the', 'and', 'les', 'des', 'der', 'die', 'das', 'und', 'von', 'van', 'for', 'pour'] -%}
    nullif(array_to_string(array(
        select distinct left(name_token, 4)
        from regexp_split_to_table({{ name }}, ' ') as name_token
        where
            length(name_token) >= 3
            and name_token not in ({{ "'" ~ stop_tokens | join("', '") ~ "'" }})
        order by 1
    ), ' '), '')
{%- endmacro %}


{#- name_keys as a text[] (a GIN index on this expression finds the records holding a key). -#}
{% macro name_key_array(name_keys) -%}
    string_to_array({{ name_keys }}, ' ')
{%- endmacro %}
