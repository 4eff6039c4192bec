"""dbt incremental vs full refresh on a 1,000,000-charge raw table.

    .venv/bin/python bench/dbt_incremental.py [--charges 1000000] [--new-charges 10000]

Starts a throwaway embedded PostgreSQL (temp data dir, free ports), fills
raw.transactions with SQL (generate_series, payloads in the shape of Stripe's
example charge, refunds on 5% and disputes on 0.5% of charges, a year of forex
rates), then prints the time of `dbt run --full-refresh`, of an incremental
`dbt run` after +N new charges, and their ratio (target ≤ 10%). Both runs build
what a micro-batch makes Dagster rebuild: every model downstream of
raw.transactions (`--select source:stripe.transactions+`). The history is
stamped as landed when it happened (ingested_at = created + 5 s), as a live
pipeline's would be, not all in the last minute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from throwaway_stack import throwaway_stack
from txstream_dagster.db.logins import Login
from txstream_dagster.defs.dbt.resources import dbt_executable
from txstream_dagster.paths import dbt_project_dir
from txstream_dagster.resources.build import dbt_profiles_dir
from txstream_dagster.settings import load_settings

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures" / "stripe"
HISTORY_START = "2025-01-01"
HISTORY_DAYS = 365
# Charged in these; every one has daily rates except AED (kept, flagged fx_rate_missing).
# What the automation rebuilds when raw_transactions updates (translator.py).
MICRO_BATCH_MODELS = "source:stripe.transactions+"
CURRENCIES = ["usd", "eur", "gbp", "jpy", "kwd", "cad", "aud", "chf", "sek", "aed"]

INSERT_CHARGES = """
INSERT INTO raw.transactions (object_id, object_type, amount, currency, status, created_at, charge_id, customer_id,
    livemode, source, event_time, payload, kafka_topic, kafka_partition, kafka_offset, first_ingested_at, ingested_at)
SELECT id, 'charge', amount, currency, status, created_at, id, customer_id, false, 'synthetic', created_at,
    %(charge)s::jsonb || jsonb_build_object(
        'id', id, 'amount', amount, 'amount_captured', CASE WHEN succeeded THEN amount ELSE 0 END,
        'currency', currency, 'created', extract(epoch FROM created_at)::bigint, 'status', status,
        'customer', customer_id, 'captured', succeeded, 'paid', succeeded,
        'failure_code', CASE WHEN succeeded THEN NULL ELSE 'card_declined' END,
        'outcome', (%(charge)s::jsonb -> 'outcome') || jsonb_build_object(
            'type', CASE WHEN succeeded THEN 'authorized' ELSE 'issuer_declined' END,
            'reason', CASE WHEN succeeded THEN NULL ELSE (ARRAY['insufficient_funds', 'do_not_honor', 'generic_decline'])[1 + h3 %% 3] END,
            'risk_level', (ARRAY['normal', 'normal', 'normal', 'elevated'])[1 + h3 %% 4]),
        'payment_method_details', jsonb_build_object('type', 'card', 'card',
            (%(charge)s::jsonb -> 'payment_method_details' -> 'card') || jsonb_build_object(
                'brand', (ARRAY['visa', 'visa', 'mastercard', 'amex', 'discover'])[1 + h1 %% 5],
                'country', (ARRAY['US', 'GB', 'DE', 'FR', 'JP', 'KW', 'CA', 'AU', 'CH', 'AE'])[1 + h2 %% 10],
                'funding', (ARRAY['credit', 'debit', 'debit', 'prepaid'])[1 + h1 %% 4],
                'wallet', CASE h2 %% 4 WHEN 0 THEN jsonb_build_object('type', 'apple_pay', 'dynamic_last4', '4242')
                                       WHEN 1 THEN jsonb_build_object('type', 'google_pay', 'dynamic_last4', '4242')
                                       ELSE NULL END)),
        'billing_details', (%(charge)s::jsonb -> 'billing_details') || jsonb_build_object('address',
            (%(charge)s::jsonb -> 'billing_details' -> 'address') || jsonb_build_object(
                'country', (ARRAY['US', 'GB', 'DE', 'FR', 'JP', 'KW', 'CA', 'AU', 'CH', 'AE'])[1 + h2 %% 10])),
        'refunds', jsonb_build_object('object', 'list', 'data', '[]'::jsonb, 'has_more', false,
                                      'url', '/v1/charges/' || id || '/refunds')),
    'bench', i %% 4, i, ingested_at, ingested_at
FROM (
    SELECT i, 'ch_bench_' || lpad(i::text, 8, '0') AS id,
           100 + (2147483647 & hashint8(i * 7)) %% 50000 AS amount,
           (%(currencies)s::text[])[1 + (2147483647 & hashint8(i * 11)) %% cardinality(%(currencies)s::text[])] AS currency,
           (2147483647 & hashint8(i * 13)) %% 100 >= 8 AS succeeded,
           CASE WHEN (2147483647 & hashint8(i * 13)) %% 100 >= 8 THEN 'succeeded' ELSE 'failed' END AS status,
           CASE WHEN (2147483647 & hashint8(i * 17)) %% 100 < 15 THEN NULL
                ELSE 'cus_bench_' || (2147483647 & hashint8(i * 19)) %% 100000 END AS customer_id,
           created_at,
           coalesce(%(ingested_at)s::timestamptz, created_at + interval '5 seconds') AS ingested_at,
           (2147483647 & hashint8(i * 23)) AS h1, (2147483647 & hashint8(i * 29)) AS h2, (2147483647 & hashint8(i * 31)) AS h3
    FROM (
        SELECT i, %(first_created)s::timestamptz + (i - %(first)s) * %(spacing)s::interval AS created_at
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
    ) AS numbered
) AS charges
"""

INSERT_FOLLOW_UPS = """
INSERT INTO raw.transactions (object_id, object_type, amount, currency, status, created_at, charge_id, customer_id,
    livemode, source, event_time, payload, kafka_topic, kafka_partition, kafka_offset, first_ingested_at, ingested_at)
SELECT prefix || substr(c.object_id, 4), kind, c.amount / divisor, c.currency, follow_up_status, c.created_at + interval '1 day',
    c.object_id, NULL, false, 'synthetic', c.created_at + interval '1 day',
    template || jsonb_build_object('id', prefix || substr(c.object_id, 4), 'charge', c.object_id,
        'amount', c.amount / divisor, 'currency', c.currency, 'status', follow_up_status,
        'created', extract(epoch FROM c.created_at + interval '1 day')::bigint),
    'bench', c.kafka_partition, c.kafka_offset + 2000000000, c.ingested_at + interval '1 day', c.ingested_at + interval '1 day'
FROM raw.transactions AS c
CROSS JOIN LATERAL (VALUES
    ('refund', 're_', 2, 'succeeded', %(refund)s::jsonb, 20),
    ('dispute', 'dp_', 1, (ARRAY['needs_response', 'lost', 'won', 'warning_closed'])[1 + c.kafka_offset %% 4], %(dispute)s::jsonb, 200)
) AS follow_up (kind, prefix, divisor, follow_up_status, template, every)
WHERE c.object_type = 'charge' AND c.status = 'succeeded' AND c.kafka_offset %% every = 0
"""

INSERT_RATES = """
INSERT INTO raw.forex_rates (rate_date, base, quote, rate, effective_date, source, fetched_at)
SELECT day::date, 'gbp', quote,
       (1 + (2147483647 & hashint8(ordinality)) %% 200) * (1 + (extract(doy FROM day) %% 7) / 100.0),
       day::date, 'bench', day + interval '17 hours'
FROM generate_series(%(start)s::date, %(start)s::date + %(days)s, interval '1 day') AS day
CROSS JOIN unnest(%(quotes)s::text[]) WITH ORDINALITY AS quotes (quote, ordinality)
"""


def dbt(args: list[str], profiles_dir: str) -> tuple[float, float]:
    """Run dbt; (wall seconds, seconds spent executing models per run_results.json). Prints the slowest models."""
    project_dir = dbt_project_dir()
    target = project_dir / "target" / "bench"
    started = time.perf_counter()
    completed = subprocess.run(
        [dbt_executable(), *args, "--target-path", str(target)],
        cwd=project_dir,
        env={**os.environ, "DBT_PROFILES_DIR": profiles_dir},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"dbt {' '.join(args)} failed:\n{completed.stdout[-4000:]}")
    results = json.loads((target / "run_results.json").read_text())["results"]
    slowest = sorted(results, key=lambda result: -result["execution_time"])[:4]
    print("    slowest: " + ", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f} s" for r in slowest))
    return wall, sum(result["execution_time"] for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=1_000_000)
    parser.add_argument("--new-charges", type=int, default=10_000)
    options = parser.parse_args()
    templates = {name: (FIXTURES / f"{name}.json").read_text() for name in ("charge", "refund", "dispute")}
    spacing = f"{HISTORY_DAYS * 86_400 / options.charges} seconds"
    newest_day = (date.fromisoformat(HISTORY_START) + timedelta(days=HISTORY_DAYS - 1)).isoformat()

    with throwaway_stack() as (postgres, _):
        profiles = str(dbt_profiles_dir(load_settings()))  # signs in as the transformer
        started = time.perf_counter()
        with postgres.connect() as conn:
            conn.execute(
                INSERT_CHARGES,
                {
                    **templates,
                    "currencies": CURRENCIES,
                    "first": 1,
                    "last": options.charges,
                    "first_created": HISTORY_START,
                    "spacing": spacing,
                    "ingested_at": None,
                },
            )
            conn.execute(INSERT_FOLLOW_UPS, templates)
            conn.execute(
                INSERT_RATES,
                {
                    "start": HISTORY_START,
                    "days": HISTORY_DAYS + 1,
                    "quotes": [c for c in CURRENCIES if c not in ("gbp", "aed")],
                },
            )
        with postgres.connect(autocommit=True, login=Login.OWNER) as conn:
            conn.execute("VACUUM ANALYZE raw.transactions")
            conn.execute("VACUUM ANALYZE raw.forex_rates")
            [(objects, size)] = conn.execute(
                "SELECT count(*), pg_size_pretty(pg_total_relation_size('raw.transactions')) FROM raw.transactions"
            ).fetchall()
        print(f"loaded {objects:,} Stripe objects ({size}) in {time.perf_counter() - started:.0f} s")

        dbt(["seed"], profiles)
        dbt(["run", "--exclude", MICRO_BATCH_MODELS], profiles)  # the models a micro-batch does not touch
        full_wall, full_models = dbt(["run", "--full-refresh", "--select", MICRO_BATCH_MODELS], profiles)
        print(f"full refresh:        {full_wall:7.1f} s  (models {full_models:6.1f} s)")

        with postgres.connect() as conn:
            # The newest day of history gets N more charges, landed now: one big micro-batch.
            conn.execute(
                INSERT_CHARGES,
                {
                    **templates,
                    "currencies": CURRENCIES,
                    "first": options.charges + 1,
                    "last": options.charges + options.new_charges,
                    "first_created": newest_day,
                    "spacing": f"{86_400 / options.new_charges} seconds",
                    "ingested_at": datetime.now(UTC),
                },
            )
        incremental_wall, incremental_models = dbt(["run", "--select", MICRO_BATCH_MODELS], profiles)
        print(
            f"incremental (+{options.new_charges:,}): {incremental_wall:7.1f} s  (models {incremental_models:6.1f} s)"
        )
        print(
            f"ratio:               {incremental_wall / full_wall:7.1%}  (models {incremental_models / full_models:.1%})"
        )

        with postgres.connect(login=Login.TRANSFORMER) as conn:
            [(facts, missing)] = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE fx_rate_missing) FROM marts.fct_transactions"
            ).fetchall()
        print(f"fct_transactions: {facts:,} charges, {missing:,} without a GBP rate (AED)")


if __name__ == "__main__":
    main()
