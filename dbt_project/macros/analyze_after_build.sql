{#-
    The intermediate models' post-hook: analyse the table as soon as it is built, because the
    next model is planned from its statistics and autovacuum's analyze comes too late within one
    build (blocking's index searches planned without them took over 15 minutes on
    bank-to-ledger's first build instead of 14 s).

    An incremental build analyses only when it wrote a tenth of the table or more, autovacuum's
    own threshold (its rows are those stamped from the newest stamp before it on, the stamp of
    var('tests_of_the_last_build')). ANALYZE samples 30,000 rows wherever they lie, and on the
    record-keyed tables of a long history (9.4M pairs at 100k records) that was 5 to 7 s each
    window, for statistics a window barely moves.
-#}
{% macro analyze_after_build() -%}
    {%- set stamp = var('tests_of_the_last_build').get(this.identifier) -%}
    {%- if is_restaging() and stamp -%}
        do $$
        begin
            if (
                select count(*) from {{ this }}
                where {{ stamp }} >= {{ last_build_snapshot_xmin(stamp) }}
            ) >= 0.1 * (
                select greatest(reltuples, 0) from pg_class
                where oid = to_regclass('{{ this.schema }}.{{ this.identifier }}')
            ) then
                analyze {{ this }};
            end if;
        end
        $$
    {%- else -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
