{#- Commit-ordered watermarks for incremental models.

    Every raw row records `landed_xid`, the id of the transaction that last wrote
    it, and every incremental model stores, on the rows a build writes,
    `source_snapshot_xmin`: the xmin of the snapshot that build read (every
    transaction below it had ended; those at or above it may still have been
    running). The next build re-reads the rows written by transactions at or above
    the newest such xmin. A writer's transaction that commits long after it began,
    or after a build started, is therefore always picked up, whatever the clocks
    say; rows read twice merge to the same result.

    `watermark()` is looked up before the model's query is planned and written into
    it as a literal, so PostgreSQL estimates "landed_xid >= <that xid>" from its
    statistics (a few rows: an index scan). A subquery there would be planned as a
    third of the table and read everything on every micro-batch.

    `watermark(relation)` is the watermark of another incremental model, for a view
    downstream of it (fct_transactions_live); '0'::xid8 while that model is not built. -#}
{% macro watermark(relation=none) -%}
    {%- if relation is none and is_incremental() -%}
        {%- set relation = this -%}
    {%- endif -%}
    {%- if execute and relation is not none and load_relation(relation) is not none -%}
        {%- set watermark_query -%}
            select coalesce(max(source_snapshot_xmin), '0'::xid8)::text from {{ relation }}
        {%- endset -%}
        '{{ run_query(watermark_query).columns[0].values()[0] }}'::xid8
    {%- else -%}
        '0'::xid8
    {%- endif -%}
{%- endmacro %}

{#- The column every incremental model writes next to its rows: see above. -#}
{% macro source_snapshot_xmin() -%}
    pg_snapshot_xmin(pg_current_snapshot())
{%- endmacro %}
