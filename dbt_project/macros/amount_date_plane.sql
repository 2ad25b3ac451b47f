{#-
    Amount blocking's plane (int_match_candidates_blocked): an open invoice or a Square payment
    as a point whose x is ln(amount) over var('blocking_amount_tolerance') and whose y is its date
    in units of var('blocking_days_before_payment') days, so one unit either way is what
    amount_date_distance counts as 1 (the amount axis to within a few per cent). A GiST index on
    the invoices' points gives each payment its nearest invoices without looking at the others.
    GiST on a point cannot hold the workspace and currency as well (that takes btree_gist, which
    a plain PostgreSQL server may not have), so each (workspace, currency) gets its own strip of
    the plane, far apart along y: amount_date_strip numbers them.
-#}
{% macro amount_date_location(amount_minor, on_date, strip) -%}
    point(
        ln({{ amount_minor }}::double precision) / {{ var('blocking_amount_tolerance') }},
        {{ strip }} * 100000.0
        + ({{ on_date }} - date '2000-01-01')::double precision / {{ var('blocking_days_before_payment') }}
    )
{%- endmacro %}


{#- The closeness the amount key ranks an invoice by for a payment: relative amount difference
    over the tolerance plus days apart over the window before the payment, both in 0..1 within
    the window. Double precision, not numeric: it only ranks (ties by id), and numeric
    arithmetic over every pair was a quarter of the model's first build. -#}
{% macro amount_date_distance(record, entry) -%}
    abs({{ record }}.amount_minor - {{ entry }}.amount_minor)::double precision
    / {{ entry }}.amount_minor / {{ var('blocking_amount_tolerance') }}
    + abs({{ record }}.occurred_on - {{ entry }}.entry_on)::double precision
    / {{ var('blocking_days_before_payment') }}
{%- endmacro %}


{#- The invoice is within the amount tolerance (var('blocking_amount_tolerance') unless
    `tolerance` is given) and the date window of the payment. The amount check is exact in
    double precision: the difference is an integer, so rounding the product (below 2^53) cannot
    move it across one. -#}
{% macro is_in_amount_date_window(record, entry, tolerance=none) -%}
    abs({{ record }}.amount_minor - {{ entry }}.amount_minor)
    <= {{ tolerance if tolerance is not none else var('blocking_amount_tolerance') }}
    * {{ entry }}.amount_minor::double precision
    and {{ entry }}.entry_on
    between {{ record }}.occurred_on - {{ var('blocking_days_before_payment') }}
    and {{ record }}.occurred_on + {{ var('blocking_days_after_payment') }}
{%- endmacro %}


{#- The box of the plane around a payment's point `location` that holds every invoice within
    `radius` of it (amount_date_distance), clipped to the amount tolerance and the date window;
    radius 1 or more is the whole window. A margin of 1e-4 units (under a hundredth of a day)
    absorbs rounding; the exact checks follow. -#}
{% macro amount_date_search_box(record, location, radius) -%}
    {%- set tolerance = var('blocking_amount_tolerance') -%}
    box(
        point(
            ln({{ record }}.amount_minor / (1 + {{ tolerance }} * least({{ radius }}, 1))) / {{ tolerance }} - 1e-4,
            {{ location }}[1] - least({{ radius }}, 1) - 1e-4
        ),
        point(
            ln({{ record }}.amount_minor / (1 - {{ tolerance }} * least({{ radius }}, 1))) / {{ tolerance }} + 1e-4,
            {{ location }}[1]
            + least({{ radius }} * {{ var('blocking_days_before_payment') }}, {{ var('blocking_days_after_payment') }})
            / {{ var('blocking_days_before_payment') }}::double precision
            + 1e-4
        )
    )
{%- endmacro %}
