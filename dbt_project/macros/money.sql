{#-
    Money is stored as integer minor units with the ISO 4217 currency beside it.
    currency_exponent(): the number of minor-unit digits of a currency (2 unless listed).
    to_minor_units(): a major-unit amount (a decimal string such as Qonto's "120.50", or a JSON
    number such as QuickBooks' TotalAmt) as a bigint in minor units, rounded half away from zero.
-#}

{% macro currency_exponent(currency) -%}
    case upper({{ currency }})
        when 'BIF' then 0 when 'CLP' then 0 when 'DJF' then 0 when 'GNF' then 0
        when 'ISK' then 0 when 'JPY' then 0 when 'KMF' then 0 when 'KRW' then 0
        when 'PYG' then 0 when 'RWF' then 0 when 'UGX' then 0 when 'UYI' then 0
        when 'VND' then 0 when 'VUV' then 0 when 'XAF' then 0 when 'XOF' then 0
        when 'XPF' then 0
        when 'BHD' then 3 when 'IQD' then 3 when 'JOD' then 3 when 'KWD' then 3
        when 'LYD' then 3 when 'OMR' then 3 when 'TND' then 3
        else 2
    end
{%- endmacro %}


{% macro to_minor_units(amount, currency) -%}
    round(
        nullif(btrim({{ amount }}), '')::numeric
        * power(10::numeric, {{ currency_exponent(currency) }})
    )::bigint
{%- endmacro %}
