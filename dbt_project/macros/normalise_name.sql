{#-
    A company or person name reduced to what two spellings of the same counterparty share:

    1. NFD and the combining marks (U+0300..U+036F) stripped, so "Société" (NFC) and "Société"
       (NFD) both become "societe"; a few letters that do not decompose are spelt out (ß, æ, œ, ø, ł, đ);
    2. lower case;
    3. dots of initials and abbreviations dropped ("S.A.R.L." -> "sarl", "Inc." -> "inc");
    4. every other punctuation or symbol becomes a space ("O'Brien & Sons" -> "o brien sons");
    5. legal-form words removed wherever they stand ("SARL Dupont", "Dupont SARL" -> "dupont"),
       unless nothing else is left;
    6. whitespace collapsed and trimmed; an empty result is null.

    Postgres has no unaccent/pg_trgm here, so this is plain normalize() + regexp_replace().
-#}

{% macro legal_form_words() -%}
    {{ return([
        'sa', 'sas', 'sasu', 'sarl', 'eurl', 'sci', 'snc', 'selarl', 'scop',
        'gmbh', 'ag', 'kg', 'ug', 'ohg', 'ev',
        'ltd', 'limited', 'inc', 'incorporated', 'llc', 'llp', 'plc', 'pty',
        'corp', 'corporation', 'co',
        'bv', 'nv', 'srl', 'spa', 'sl', 'slu',
    ]) }}
{%- endmacro %}


{% macro normalise_name(name) -%}
    {%- set legal_forms = legal_form_words() | join('|') -%}
    {%- set cleaned -%}
        btrim(regexp_replace(
            regexp_replace(
                regexp_replace(
                    translate(
                        replace(replace(replace(
                            lower(regexp_replace(normalize({{ name }}, nfd), '[\u0300-\u036f]', '', 'g')),
                            'ß', 'ss'), 'æ', 'ae'), 'œ', 'oe'),
                        'øłđı', 'oldi'
                    ),
                    '(?<![[:alnum:]])([[:alnum:]])\.', '\1', 'g'
                ),
                '[^[:alnum:]]+', ' ', 'g'
            ),
            '\s+', ' ', 'g'
        ))
    {%- endset -%}
    {%- set without_legal_forms -%}
        btrim(regexp_replace(
            regexp_replace(' ' || {{ cleaned }} || ' ', ' (?:{{ legal_forms }})(?= )', '', 'g'),
            '\s+', ' ', 'g'
        ))
    {%- endset -%}
    nullif(coalesce(nullif({{ without_legal_forms }}, ''), {{ cleaned }}), '')
{%- endmacro %}
