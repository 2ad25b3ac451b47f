{#-
    A company or person name reduced to what two spellings of the same counterparty share:

    1. NFD and the combining marks (U+0300..U+036F) stripped, so "Société" (NFC) and "Société"
       (NFD) both become "societe"; a few letters that do not decompose are spelt out (ß, æ, œ, ø, ł, đ);
    2. lower case;
    3. dots of initials and abbreviations dropped ("S.A.R.L." -> "sarl", "Inc." -> "inc");
    4. every other punctuation or symbol becomes a space ("O'Brien & Sons" -> "o brien sons");
    5. legal-form words removed wherever they stand ("SARL Dupont", "Dupont SARL" -> "dupont"),
       and payment-type noise a bank adds to a memo ("BGC", "CHQ", "payment", "donation"), also
       when the memo's length limit cut it short at the end ("H BELLANGE mone"), unless nothing
       else is left;
    6. a reference code the bank appended after the name dropped: the last token, once the noise
       is gone, if it is 4 to 8 letters and digits with at least one of each ("LEWIS S J cb1d0",
       "N R b23f28be BG" -> "lewis s j", "n r"), but not an ordinal ("21st"), unless nothing
       else is left;
    7. whitespace collapsed and trimmed; an empty result is null.

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


{#- UK bank transaction codes (bank giro credit, cash, cheque, transfer, faster payment) and the
    words payers put in a memo that say how, not who, paid. -#}
{% macro payment_noise_words() -%}
    {{ return(['bgc', 'csh', 'chq', 'wre', 'tfr', 'fpi', 'fpo', 'money', 'payment', 'donation']) }}
{%- endmacro %}


{#- Every prefix of two or more letters of the noise words: what is left of one at a cut. -#}
{% macro truncated_noise_words() -%}
    {%- set prefixes = [] -%}
    {%- for word in payment_noise_words() -%}
        {%- for length in range(2, word | length + 1) -%}
            {%- if word[:length] not in prefixes -%}{%- do prefixes.append(word[:length]) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(prefixes) }}
{%- endmacro %}


{#- A payment reference or hash a bank appends to a memo: 4 to 8 letters and digits, at least one of
    each, that is not an ordinal such as "21st" (a baronet's "4th" is too short to match). -#}
{% macro reference_code_pattern() -%}
    {{ return('(?=[a-z0-9]*[0-9])(?=[a-z0-9]*[a-z])(?![0-9]+(?:st|nd|rd|th) )[a-z0-9]{4,8}') }}
{%- endmacro %}


{% macro normalise_name(name) -%}
    {%- set noise_words = (legal_form_words() + payment_noise_words()) | join('|') -%}
    {%- set cut_noise_words = truncated_noise_words() | join('|') -%}
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
    {#- a cut noise word only counts at the end and never as the first word ("Don Pedro"); a
        reference code only counts at the end once the noise after it is gone, and never alone -#}
    {%- set without_noise -%}
        btrim(regexp_replace(
            regexp_replace(
                regexp_replace(
                    regexp_replace(' ' || {{ cleaned }} || ' ', ' (?:{{ noise_words }})(?= )', '', 'g'),
                    '(?<=\S) (?:{{ cut_noise_words }}) $', ' '
                ),
                '(?<=\S) {{ reference_code_pattern() }} +$', ' '
            ),
            '\s+', ' ', 'g'
        ))
    {%- endset -%}
    nullif(coalesce(nullif({{ without_noise }}, ''), {{ cleaned }}), '')
{%- endmacro %}
