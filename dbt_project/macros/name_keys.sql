{#-
    A normalised name's blocking keys, as a sorted text[] without repeats: the first four
    characters of each token of three or more characters that is not a stop word. Equal tokens
    share a key, and so do a full token and its truncation ("INTERNATIONAL BUSINESS MACH" /
    "machines"). Empty for a null name.
-#}
{% macro name_keys(name) -%}
    {%- set stop_tokens = ['the', 'and', 'les', 'des', 'der', 'die', 'das', 'und', 'von', 'van', 'for', 'pour'] -%}
    array(
        select distinct left(name_token, 4)
        from regexp_split_to_table({{ name }}, ' ') as name_token
        where
            length(name_token) >= 3
            and name_token not in ({{ "'" ~ stop_tokens | join("', '") ~ "'" }})
        order by 1
    )
{%- endmacro %}
