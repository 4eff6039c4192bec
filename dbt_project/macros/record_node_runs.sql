{#- on-run-end: one row per node result in ops.dbt_node_runs, so the dashboards can
    show when each model last built successfully. Only commands that build or
    test anything record (compile, docs generate and friends report no builds),
    and only on the production target: a dev build is not a fresh mart. -#}
{% macro record_node_runs(results) -%}
    {%- if execute and results and is_production_target() and flags.WHICH in ('run', 'build', 'seed', 'test', 'snapshot') -%}
    insert into ops.dbt_node_runs
        (invocation_id, unique_id, resource_type, status, rows_affected, execution_seconds, completed_at)
    values
    {%- for result in results %}
        (
            {{ sql_text(invocation_id) }},
            {{ sql_text(result.node.unique_id) }},
            {{ sql_text(result.node.resource_type) }},
            {{ sql_text(result.status) }},
            {{ rows_affected(result) }},
            {{ result.execution_time | float }},
            {{ node_completed_at(result) }}
        ){{ "," if not loop.last }}
    {%- endfor %}
    on conflict (invocation_id, unique_id) do update set
        status = excluded.status,
        rows_affected = excluded.rows_affected,
        execution_seconds = excluded.execution_seconds,
        completed_at = excluded.completed_at
    {%- endif -%}
{%- endmacro %}

{#- A SQL string literal; the values are dbt's own identifiers, quoted all the same. -#}
{% macro sql_text(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro rows_affected(result) -%}
    {%- set response = result.adapter_response or {} -%}
    {%- set rows = response.get('rows_affected') -%}
    {{- rows if rows is number and rows >= 0 else 'null' -}}
{%- endmacro %}

{#- When the node finished executing (dbt's timing is UTC); now() when it never ran (skipped). -#}
{% macro node_completed_at(result) -%}
    {%- set finished = [] -%}
    {%- for timing in result.timing if timing.name == 'execute' and timing.completed_at -%}
        {%- do finished.append(timing.completed_at) -%}
    {%- endfor -%}
    {%- if finished -%}
        {%- set at = finished[0] -%}
        '{{ at.strftime("%Y-%m-%dT%H:%M:%S.%f") }}{{ "+00:00" if at.tzinfo is none else at.strftime("%z") }}'::timestamptz
    {%- else -%}
        now()
    {%- endif -%}
{%- endmacro %}
