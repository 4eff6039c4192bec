"""The `stripe_events_topic` asset and `txstream produce`, against the real broker (and a local Stripe)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import dagster as dg
import pytest
from click.testing import CliRunner

from stripe_helpers import FakeStripe, events_from_versions, headers_of, read_topic
from txstream_dagster.cli.produce import Duration, produce
from txstream_dagster.definitions import build_definitions
from txstream_dagster.defs.stripe_source.assets import stripe_events_topic
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.sensors import stripe_ingestion_job, stripe_ingestion_sensor
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, SyntheticStripe
from txstream_dagster.defs.stripe_source.topic_feeds import metered
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.settings import load_settings
from txstream_spark.event_contract import HEADER_EVENT_TIME, HEADER_OBJECT_TYPE


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# --- pure parts -----------------------------------------------------------------------


def test_metering_paces_to_the_rate_and_stops_at_the_deadline_or_on_request():
    clock = FakeClock()
    assert len(list(metered(range(5_000), rate=1_000, clock=clock, sleep=clock.sleep))) == 5_000
    assert 4.9 <= clock.now <= 5.0

    clock = FakeClock()
    paced_until_deadline = list(metered(range(100_000), rate=1_000, deadline=2.0, clock=clock, sleep=clock.sleep))
    assert 1_900 <= len(paced_until_deadline) <= 2_100

    clock = FakeClock()
    slow = list(metered(range(100), rate=2, deadline=10.0, clock=clock, sleep=clock.sleep))
    assert len(slow) == 20 and clock.now == 10.0  # one at a time, not in bursts; no sleeping past the end

    stop = threading.Event()
    stop.set()
    assert list(metered(range(10), stop=stop)) == []


@pytest.mark.parametrize("text, seconds", [("60s", 60), ("5m", 300), ("1h30m", 5_400), ("250ms", 0.25), ("90", 90)])
def test_durations_read_the_way_people_write_them(text, seconds):
    assert Duration().convert(text, None, None) == seconds


def test_a_duration_that_is_not_one_is_refused():
    with pytest.raises(Exception, match="not a duration"):
        Duration().convert("soon", None, None)


# --- the asset ----------------------------------------------------------------------------


def materialize(kafka: KafkaResource, postgres: PostgresResource, stripe: StripeResource, **config):
    result = dg.materialize(
        [stripe_events_topic],
        resources={"kafka": kafka, "postgres": postgres, "stripe": stripe},
        run_config={"ops": {"stripe_events_topic": {"config": config}}},
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("stripe_events_topic")
    return {name: value.value for name, value in materialization.metadata.items()}


def test_materialising_without_a_stripe_key_publishes_a_synthetic_batch_and_reports_offsets(
    kafka: KafkaResource, postgres: PostgresResource
):
    metadata = materialize(kafka, postgres, StripeResource(), messages=3_000, seed=5)

    assert metadata["source"] == "synthetic" and metadata["seed"] == 5
    assert metadata["messages_published"] == 3_000 == len(read_topic(kafka))
    assert sum(metadata["end_offsets"].values()) == 3_000
    assert len(metadata["end_offsets"]) == load_settings().topic_partitions
    assert metadata["events_per_second"] > 0


def test_materialising_a_history_spreads_charges_over_the_requested_days(kafka: KafkaResource, postgres):
    metadata = materialize(kafka, postgres, StripeResource(), messages=2_000, seed=6, history_days=4)

    records = read_topic(kafka)
    event_times = [int(headers_of(r)[HEADER_EVENT_TIME]) for r in records]
    assert metadata["messages_published"] == len(records) > 2_000  # charges plus their refunds and disputes
    assert (max(event_times) - min(event_times)) > 3.5 * DAY_MS
    assert Counter(headers_of(r)[HEADER_OBJECT_TYPE] for r in records)["refund"] > 0


def test_materialising_with_a_stripe_key_backfills_first_then_pulls_new_events_from_stripe(
    kafka: KafkaResource, clean_warehouse: PostgresResource
):
    with FakeStripe() as fake:
        now_ms = int(time.time() * 1000)
        events_from_versions(fake, SyntheticStripe(8).history(now_ms - DAY_MS, now_ms - 60_000, 100))
        stripe = fake.account(settle_seconds=0)
        first = materialize(kafka, clean_warehouse, stripe)
        charge = next(obj for obj in fake.objects.values() if obj["object"] == "charge")
        fake.add_event("charge.updated", {**charge, "description": "later"}, int(time.time()))
        time.sleep(1.1)  # whole seconds: the next pull reads up to the second before it starts
        second = materialize(kafka, clean_warehouse, stripe)

    assert first["source"] == "stripe"
    # A first pull lists every object as it is now (one message each), then the Events cursor takes over.
    assert first["backfill_complete"] is True
    assert first["messages_published"] == len(fake.objects) == sum(first["backfilled_by_object_type"].values())
    assert second["messages_published"] == 1 and "backfill_complete" not in second
    assert second["stripe_cursor"] >= first["stripe_cursor"] > now_ms / 1000 - 60
    assert len(read_topic(kafka)) == len(fake.objects) + 1


@pytest.mark.parametrize("key, warned", [("sk_test_fake_4242", True), ("rk_test_fake_4242", False)])
def test_a_secret_key_is_warned_about_and_a_restricted_key_is_not(kafka, clean_warehouse, key, warned):
    with FakeStripe(api_key=key) as fake, dg.instance_for_test() as instance:
        stripe = fake.account()
        result = dg.materialize(
            [stripe_events_topic],
            resources={"kafka": kafka, "postgres": clean_warehouse, "stripe": stripe},
            instance=instance,
        )
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    warnings = [message for message in messages if "restricted key (rk_…)" in message]
    assert bool(warnings) is warned
    assert not any(key in message for message in messages)  # the key itself is never logged


# --- the command ----------------------------------------------------------------------------


def test_produce_publishes_the_requested_count_and_prints_a_summary(kafka: KafkaResource):
    result = CliRunner().invoke(produce, ["--count", "2500", "--rate", "0", "--seed", "3", "--topic", kafka.topic])

    assert result.exit_code == 0, result.output
    assert "2,500" in result.output and "seed" in result.output and "partition end offsets" in result.output
    assert len(read_topic(kafka)) == 2_500


def test_produce_for_a_duration_stops_and_never_exceeds_the_rate(kafka: KafkaResource):
    # Pacing itself is tested with a fake clock above; here: the CLI ends, publishes, and stays under the rate.
    result = CliRunner().invoke(produce, ["--rate", "500", "--duration", "2s", "--topic", kafka.topic])

    assert result.exit_code == 0, result.output
    assert 0 < len(read_topic(kafka)) <= 500 * 2 * 1.05


def test_produce_refuses_a_history_without_a_size_and_stripe_without_a_key(local_stack):
    history = CliRunner().invoke(produce, ["--history-days", "7"])
    stripe = CliRunner().invoke(produce, ["--source", "stripe", "--count", "1"])

    assert history.exit_code == 2 and "--history-days needs --count" in history.output
    assert stripe.exit_code == 2 and "STRIPE_API_KEY" in stripe.output


def test_produce_pulls_from_stripe_when_a_key_is_set(
    kafka: KafkaResource, clean_warehouse: PostgresResource, monkeypatch: pytest.MonkeyPatch
):
    with FakeStripe() as fake:
        now_ms = int(time.time() * 1000)
        events_from_versions(fake, SyntheticStripe(9).history(now_ms - DAY_MS, now_ms - 60_000, 50))
        monkeypatch.setenv("STRIPE_API_KEY", fake.api_key)
        monkeypatch.setenv("TXSTREAM_STRIPE_API_BASE", fake.url)
        try:
            result = CliRunner().invoke(produce, ["--duration", "0s", "--topic", kafka.topic])
        finally:
            monkeypatch.undo()

    assert result.exit_code == 0, result.output
    assert fake.api_key not in result.output
    assert "backfilled charges" in result.output and "Stripe cursor" in result.output
    assert len(read_topic(kafka)) == len(fake.objects)  # a first pull: each object once, as it is now


def test_the_code_location_loads_with_the_topic_asset_and_every_resource_it_needs():
    code_location = build_definitions(load_settings())

    dg.Definitions.validate_loadable(code_location)
    assert code_location.get_assets_def("stripe_events_topic").required_resource_keys >= {"kafka", "postgres", "stripe"}


# --- always-on ingestion ------------------------------------------------------------------------


def test_with_a_key_the_sensor_requests_a_pull_each_tick_unless_one_is_running(kafka, clean_warehouse):
    keyed = StripeResource(api_key="rk_test_always_on", api_base="http://127.0.0.1:9")
    defs = dg.Definitions(
        assets=[stripe_events_topic],
        jobs=[stripe_ingestion_job],
        sensors=[stripe_ingestion_sensor],
        resources={"kafka": kafka, "postgres": clean_warehouse, "stripe": keyed},
    )
    with dg.instance_for_test() as instance:
        first = stripe_ingestion_sensor(dg.build_sensor_context(instance=instance, resources={"stripe": keyed}))
        assert isinstance(first, dg.RunRequest)
        instance.create_run_for_job(defs.resolve_job_def(stripe_ingestion_job.name), status=dg.DagsterRunStatus.STARTED)
        busy = stripe_ingestion_sensor(dg.build_sensor_context(instance=instance, resources={"stripe": keyed}))
        unkeyed = stripe_ingestion_sensor(
            dg.build_sensor_context(instance=instance, resources={"stripe": StripeResource()})
        )
    assert isinstance(busy, dg.SkipReason) and "still running" in busy.skip_message
    assert isinstance(unkeyed, dg.SkipReason) and "STRIPE_API_KEY is not set" in unkeyed.skip_message


def test_the_ingestion_sensor_is_on_by_default_so_a_deployed_stack_ingests():
    assert stripe_ingestion_sensor.default_status == dg.DefaultSensorStatus.RUNNING
