{#-
    The columns together identify a row (dbt_utils' test of the same name, without the package:
    the project installs no dbt packages so it builds offline).
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

    select
        {{ combination_of_columns | join(', ') }},
        count(*) as row_count
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1

{% endtest %}
