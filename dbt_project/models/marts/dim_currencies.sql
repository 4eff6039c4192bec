with

currencies as (

    select * from {{ ref('currencies') }}

),

final as (

    select
        currency as currency_code,
        upper(currency) as iso_code,
        currency_name,
        minor_unit_exponent

    from currencies

)

select * from final
