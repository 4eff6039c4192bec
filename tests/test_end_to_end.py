"""The whole pipeline through Dagster: topic → Spark → raw tables → forex → dbt, checked against the money.

Synthetic charges (published by the `stripe_events_topic` asset), Stripe's own
example objects and malformed messages go into one topic. Whatever the topic
holds is the reference: read back, the latest version of every object must be
in the warehouse exactly once, every charge in `fct_transactions` with the GBP
amount its rate gives, and every malformed message in quarantine with a reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import orjson
import psycopg
import pytest
from kafka import TopicPartition

from dbt_helpers import build_marts, empty_warehouse, facts_by_charge
from resource_helpers import spark_resource
from stripe_helpers import stripe_fixture
from txstream_dagster.currencies import currency
from txstream_dagster.db.logins import PIPELINE_LOGINS
from txstream_dagster.defs.forex.assets import forex_rates
from txstream_dagster.defs.forex.resources import ForexApiResource
from txstream_dagster.defs.stream.assets import raw_transactions
from txstream_dagster.defs.stream.checks import every_message_is_accounted_for, quarantine_rate_is_low
from txstream_dagster.defs.stripe_source.assets import stripe_events_topic
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark.event_contract import HEADER_EVENT_TIME, message_headers

pytestmark = pytest.mark.slow

CHARGES = 400
HISTORY_DAYS = 3
MALFORMED = {
    b"{truncated": "invalid_json",
    b'"a string"': "not_an_object",
    b"\xc3\x28": "invalid_utf8",
    b'{"object": "invoice", "id": "in_1", "amount": 5, "currency": "gbp"}': "unknown_object_type",
    orjson.dumps({**stripe_fixture("charge"), "id": "ch_e2e_bad", "amount": "100"}): "wrong_type",
}


def publish_fixtures_and_malformed(kafka: KafkaResource) -> None:
    producer = kafka.producer()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    for name in ("charge", "refund", "dispute"):
        obj = stripe_fixture(name)
        producer.send(
            kafka.topic,
            key=obj["id"].encode(),
            value=orjson.dumps(obj),
            headers=message_headers(obj["object"], "stripe", now_ms),
        )
    for value in MALFORMED:
        producer.send(kafka.topic, key=b"malformed", value=value)
    producer.flush()
    producer.close()


def latest_objects_in(kafka: KafkaResource) -> dict[str, dict]:
    """Every object the topic holds, at its latest version (by event time, then offset)."""
    ends = kafka.end_offsets()
    consumer = kafka.consumer()
    partitions = [TopicPartition(kafka.topic, p) for p in ends]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    latest: dict[str, tuple] = {}
    seen = 0
    while seen < sum(ends.values()):
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                seen += 1
                if record.key == b"malformed":
                    continue
                obj = orjson.loads(record.value)
                version = (int(dict(record.headers)[HEADER_EVENT_TIME]), record.offset)
                if obj["id"] not in latest or version > latest[obj["id"]][0]:
                    latest[obj["id"]] = (version, obj)
    consumer.close()
    return {object_id: obj for object_id, (_, obj) in latest.items()}


def test_everything_valid_lands_once_with_the_right_gbp_amount_and_nothing_is_lost(
    clean_warehouse: PostgresResource, kafka: KafkaResource, local_stack, tmp_path
):
    empty_warehouse(clean_warehouse)
    today = datetime.now(UTC).date()
    forex = ForexApiResource(source="ecb_bundled", bundled_max_days_past_end=90)
    spark = spark_resource(master="local[2]", checkpoint_root=str(tmp_path / "checkpoints"))
    resources = {
        "kafka": kafka,
        "postgres": clean_warehouse,
        "forex": forex,
        "spark": spark,
        "stripe": StripeResource(),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }

    with dg.instance_for_test() as instance:
        produced = dg.materialize(
            [stripe_events_topic],
            instance=instance,
            resources=resources,
            run_config={
                "ops": {
                    "stripe_events_topic": {"config": {"messages": CHARGES, "history_days": HISTORY_DAYS, "seed": 11}}
                }
            },
        )
        publish_fixtures_and_malformed(kafka)
        rates = dg.materialize(
            [forex_rates],
            instance=instance,
            resources=resources,
            tags={
                "dagster/asset_partition_range_start": (today - timedelta(days=HISTORY_DAYS + 1)).isoformat(),
                "dagster/asset_partition_range_end": today.isoformat(),
            },
        )
        landed = dg.materialize(
            [raw_transactions, every_message_is_accounted_for, quarantine_rate_is_low],
            instance=instance,
            resources=resources,
        )
        marts = build_marts(clean_warehouse, full_refresh=True, instance=instance)

        assert produced.success and rates.success and landed.success and marts.success
        for key in ("stripe_events_topic", "forex_rates", "raw_transactions", "marts/fct_transactions"):
            assert instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key)), f"{key} not recorded"
        reconciliation = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey("raw_transactions"), "every_message_is_accounted_for")
        )
        assert reconciliation.event.asset_check_evaluation.passed
        dbt_checks = [e for e in marts.get_asset_check_evaluations() if e.asset_key.path[0] != "raw_transactions"]
        assert len(dbt_checks) > 20 and all(e.passed for e in dbt_checks if e.severity == dg.AssetCheckSeverity.ERROR)

        # No secret reached the runs' event logs or metadata (the Spark job got the URL in its environment).
        passwords = [psycopg.conninfo.conninfo_to_dict(local_stack.postgres.url())["password"]] + [
            local_stack.login_password(login) for login in PIPELINE_LOGINS
        ]
        for run in (produced, rates, landed, marts):
            logged = "\n".join(str(entry) for entry in instance.all_logs(run.run_id))
            assert logged and not any(password in logged for password in passwords)

    objects = latest_objects_in(kafka)
    charges = {i: o for i, o in objects.items() if o["object"] == "charge"}
    assert len(charges) == CHARGES + 1  # the synthetic history and Stripe's example charge

    # every object exactly once, at its latest version
    held = dict(clean_warehouse.fetch_all("SELECT object_id, payload FROM raw.transactions"))
    assert held.keys() == objects.keys()
    assert all(held[i] == o for i, o in objects.items())

    # every charge exactly once in the fact, with the GBP amount its rate gives
    facts = facts_by_charge(clean_warehouse)
    assert facts.keys() == charges.keys()
    rates_by_day = {
        (d, q): r for d, q, r in clean_warehouse.fetch_all("SELECT rate_date, quote, rate FROM raw.forex_rates")
    }
    converted = 0
    for charge_id, charge in charges.items():
        fact = facts[charge_id]
        major = currency(charge["currency"]).to_major(charge["amount"])
        assert fact["amount"] == major
        day = datetime.fromtimestamp(charge["created"], UTC).date()
        rate = Decimal(1) if charge["currency"] == "gbp" else rates_by_day.get((day, charge["currency"]))
        if rate is None:
            assert fact["fx_rate_missing"] and fact["amount_gbp"] is None, charge_id
        else:
            assert not fact["fx_rate_missing"]
            assert abs(fact["amount_gbp"] - major / rate) < Decimal("1e-9"), charge_id
            converted += 1
    assert converted > CHARGES * 0.8  # most currencies have ECB rates

    # every malformed message in quarantine, with its reason
    quarantined = clean_warehouse.fetch_all("SELECT raw_value, reason FROM raw.quarantined_events")
    assert {bytes(value): reason for value, reason in quarantined} == MALFORMED
