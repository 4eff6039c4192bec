{#- The last build of every dbt model and seed, and the last successful one. -#}

with

node_runs as (

    select * from {{ source('dbt', 'node_runs') }}
    where resource_type in ('model', 'seed', 'snapshot')

),

latest as (

    select distinct on (unique_id)
        unique_id,
        resource_type,
        status as last_status,
        completed_at as last_run_at,
        rows_affected as last_rows_affected,
        execution_seconds as last_execution_seconds
    from node_runs
    order by unique_id asc, completed_at desc

),

successes as (

    select
        unique_id,
        max(completed_at) as last_success_at
    from node_runs
    where status = 'success'
    group by unique_id

),

final as (

    select
        split_part(latest.unique_id, '.', 3) as model_name,
        latest.unique_id,
        latest.resource_type,
        latest.last_status,
        latest.last_run_at,
        successes.last_success_at,
        extract(epoch from now() - successes.last_success_at) as seconds_since_last_success,
        latest.last_rows_affected,
        latest.last_execution_seconds

    from latest
    left join successes
        on latest.unique_id = successes.unique_id

)

select * from final
