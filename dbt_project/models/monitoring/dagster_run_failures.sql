{#- Failed Dagster runs, for the "Dagster run failed" alert: Grafana cannot ask Dagster. -#}

with

failures as (

    select * from {{ source('dagster', 'run_failures') }}

),

final as (

    select
        run_id,
        job_name,
        failed_at,
        message,
        failed_steps,
        error,
        partition_key

    from failures

)

select * from final
