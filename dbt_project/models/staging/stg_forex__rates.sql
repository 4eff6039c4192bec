with

source as (

    select * from {{ source('forex', 'rates') }}

),

renamed as (

    select
        rate_date,
        base as base_currency,
        quote as quote_currency,
        rate,
        effective_date,
        source as rate_source,
        fetched_at,
        landed_xid

    from source

)

select * from renamed
