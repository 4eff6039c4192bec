"""No single record can stop the marts: hostile Stripe objects through Kafka, Spark and Dagster's dbt build.

Every message here goes through the real topic and one catch-up run of the real
stream (the `raw_transactions` asset), then one dbt build of every model through
Dagster. What the stream lands must build: an object PostgreSQL could not type
(a field the staging models cast) is quarantined at the stream with a reason; a
legitimate Stripe object txstream cannot fully use yet (a currency missing from
currencies.csv, a status Stripe added, a refund whose charge has not landed, a
refund in another currency) is kept, flagged in the marts and named by a
warning, never by a failed build. The good charges' money must not move.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt_helpers import charge, dispute, empty_warehouse, facts_by_charge, refund, rows, utc, write_rates
from resource_helpers import spark_resource
from stream_helpers import Message, land_messages
from stripe_helpers import stripe_fixture
from txstream_dagster.defs.dbt.assets import DbtBuildConfig, txstream_dbt_models
from txstream_dagster.defs.dbt.checks import flagged_records, fx_rate_missing_charges
from txstream_dagster.defs.stream.assets import raw_transactions
from txstream_dagster.resources import build
from txstream_dagster.resources.build import event_log
from txstream_dagster.settings import load_settings
from txstream_spark.event_contract import message_headers

pytestmark = pytest.mark.slow

DAY = date(2024, 6, 14)
USD_RATE = Decimal("1.2731")
AT = utc(2024, 6, 14, 12)

# --- good charges, whose money must come out exactly as without the hostile records ---------
GOOD_GBP = charge("ch_good_gbp", 2500, "gbp", AT, customer="cus_good")
GOOD_USD = charge("ch_good_usd", 4200, "usd", AT)
GOOD_REFUND = refund("re_good", GOOD_GBP, 500, AT)
GOOD_CHARGEBACK = dispute("dp_good", GOOD_USD, 1000, AT, "needs_response")
# Stripe's example card, with no issuing country: the key "~null~" must not share.
NO_COUNTRY = charge("ch_good_no_country", 1000, "usd", AT)
NO_COUNTRY["payment_method_details"]["card"]["country"] = None
GOOD = [GOOD_GBP, GOOD_USD, GOOD_REFUND, GOOD_CHARGEBACK, NO_COUNTRY]


def with_card(obj: dict, **card) -> dict:
    obj = copy.deepcopy(obj)
    obj["payment_method_details"]["card"].update(card)
    return obj


def without(obj: dict, field: str) -> dict:
    return {k: v for k, v in obj.items() if k != field}


# --- not a valid Stripe object: quarantined at the stream (object id → reason) ---------------
QUARANTINED = {
    "ch_risk_score_text": (
        charge("ch_risk_score_text", 100, "usd", AT, outcome={"type": "authorized", "risk_score": "high"}),
        "wrong_type",
    ),
    "ch_captured_fraction": (charge("ch_captured_fraction", 100, "usd", AT, amount_captured=10.5), "wrong_type"),
    "ch_no_status": (without(charge("ch_no_status", 100, "usd", AT), "status"), "missing_field"),
    "ch_paid_yes": (charge("ch_paid_yes", 100, "usd", AT, paid="yes"), "wrong_type"),
    "ch_card_string": (
        charge("ch_card_string", 100, "usd", AT, payment_method_details={"type": "card", "card": "visa"}),
        "wrong_type",
    ),
    "dp_due_never": (
        {**dispute("dp_due_never", GOOD_USD, 100, AT, "needs_response"), "evidence_details": {"due_by": 10**14}},
        "invalid_value",
    ),
}

# --- legitimate Stripe objects txstream cannot fully use: kept and flagged ------------------
UNKNOWN_CURRENCY = charge("ch_unknown_currency", 12345, "xts", AT)  # ISO 4217's testing code: in no seed
UNKNOWN_STATUS = charge("ch_unknown_status", 777, "usd", AT, status="requires_review")
ORPHAN_REFUND = refund("re_orphan", {"id": "ch_never_arrived", "currency": "gbp"}, 300, AT)
ORPHAN_DISPUTE = dispute("dp_orphan", {"id": "ch_never_arrived_either", "currency": "gbp"}, 300, AT, "lost")
REFUND_UNKNOWN_STATUS = refund("re_unknown_status", GOOD_GBP, 400, AT, status="reversed")
REFUND_NO_STATUS = refund("re_no_status", GOOD_GBP, 200, AT, status=None)
REFUND_OTHER_CURRENCY = {**refund("re_other_currency", GOOD_GBP, 900, AT), "currency": "jpy"}
DISPUTE_UNKNOWN_STATUS = dispute("dp_unknown_status", GOOD_USD, 600, AT, "prearbitration")
# Values that would give two different payment methods (or revenue rows) one surrogate key.
NULL_LOOKALIKE = with_card(charge("ch_country_null_lookalike", 2000, "usd", AT), country="~null~")
PIPE_BRAND = with_card(charge("ch_pipe_in_brand", 3000, "usd", AT), brand="visa|x", country="GB")
PIPE_COUNTRY = with_card(charge("ch_pipe_in_country", 4000, "usd", AT), brand="visa", country="x|GB")
FLAGGED = [
    UNKNOWN_CURRENCY,
    UNKNOWN_STATUS,
    ORPHAN_REFUND,
    ORPHAN_DISPUTE,
    REFUND_UNKNOWN_STATUS,
    REFUND_NO_STATUS,
    REFUND_OTHER_CURRENCY,
    DISPUTE_UNKNOWN_STATUS,
    NULL_LOOKALIKE,
    PIPE_BRAND,
    PIPE_COUNTRY,
]
EXPECTED_FLAGS = {
    ("ch_unknown_currency", "currency_unknown"),
    ("ch_unknown_status", "status_unknown"),
    ("re_orphan", "charge_missing"),
    ("dp_orphan", "charge_missing"),
    ("re_unknown_status", "status_unknown"),
    ("re_no_status", "status_unknown"),
    ("re_other_currency", "currency_differs_from_charge"),
    ("dp_unknown_status", "status_unknown"),
}


def publish(kafka, objects: list[dict]) -> None:
    producer = kafka.producer()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    for i, obj in enumerate(objects):
        producer.send(
            kafka.topic,
            key=obj["id"].encode(),
            value=orjson.dumps(obj),
            headers=message_headers(obj["object"], "synthetic", now_ms + i),
        )
    producer.flush()
    producer.close()


@pytest.fixture(scope="module")
def pipeline(postgres, local_stack, tmp_path_factory):
    """One stream run over every message, then one dbt build of every model, both through Dagster."""
    empty_warehouse(postgres)
    write_rates(postgres, [(DAY, "usd", USD_RATE, DAY), (DAY, "jpy", "199.4837", DAY)])
    kafka = event_log(load_settings()).for_topic(f"test.hostile.{uuid.uuid4().hex[:12]}")
    kafka.ensure_topic()
    publish(kafka, GOOD + [obj for obj, _ in QUARANTINED.values()] + FLAGGED)
    spark = spark_resource(master="local[2]", checkpoint_root=str(tmp_path_factory.mktemp("checkpoints")))
    with dg.instance_for_test() as instance:
        landed = dg.materialize(
            [raw_transactions],
            instance=instance,
            resources={
                "kafka": kafka,
                "postgres": postgres,
                "spark": spark,
                "pipes_subprocess_client": dg.PipesSubprocessClient(),
            },
        )
        marts = dg.materialize(
            [txstream_dbt_models, fx_rate_missing_charges, flagged_records],
            instance=instance,
            resources={"dbt": build.dbt_cli(load_settings()), "postgres": postgres},
            run_config=dg.RunConfig(ops={"txstream_dbt_models": DbtBuildConfig(full_refresh=True)}),
            raise_on_error=False,
        )
        materialized = {
            key.to_user_string()
            for key in txstream_dbt_models.keys
            if instance.get_latest_materialization_event(key) is not None
        }
        yield {"landed": landed, "marts": marts, "materialized": materialized}


def test_the_stream_lands_everything_once_and_quarantines_only_what_postgresql_cannot_type(pipeline, postgres):
    assert pipeline["landed"].success
    quarantined = {
        bytes(key).decode(): reason
        for key, reason in postgres.fetch_all("SELECT kafka_key, reason FROM raw.quarantined_events")
    }
    assert quarantined == {object_id: reason for object_id, (_, reason) in QUARANTINED.items()}
    landed = {object_id for (object_id,) in postgres.fetch_all("SELECT object_id FROM raw.transactions")}
    assert landed == {obj["id"] for obj in GOOD + FLAGGED}


def test_the_build_succeeds_and_every_mart_is_materialized(pipeline):
    result = pipeline["marts"]
    assert result.success
    assert pipeline["materialized"] == {key.to_user_string() for key in txstream_dbt_models.keys}
    blocking_failures = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert blocking_failures == []


def test_what_a_blocking_test_would_have_rejected_is_reported_by_warnings(pipeline):
    warned = {
        e.check_name
        for e in pipeline["marts"].get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.WARN
    }
    assert {
        "stg_stripe__charges_currency_code_is_in_currencies_csv",
        "stg_stripe__charges_charge_status_is_known",
        "stg_stripe__refunds_refund_status_is_set",
        "stg_stripe__refunds_refund_status_is_known",
        "stg_stripe__disputes_dispute_status_is_known",
        "fct_transactions_currency_code_is_in_dim_currencies",
        "fct_transactions_charge_status_is_known",
        "agg_daily_revenue_currency_code_is_in_dim_currencies",
        "flagged_records",
    } <= warned


def test_the_flagged_records_check_names_every_flagged_object(pipeline, postgres):
    [check] = [e for e in pipeline["marts"].get_asset_check_evaluations() if e.check_name == "flagged_records"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["flagged_records"].value == len(EXPECTED_FLAGS)
    table = check.metadata["records"].value
    assert all(object_id in table for object_id, _ in EXPECTED_FLAGS)
    held = {(r["object_id"], r["flag"]) for r in rows(postgres, "SELECT * FROM monitoring.flagged_records")}
    assert held == EXPECTED_FLAGS


def test_the_good_charges_money_is_unchanged(pipeline, postgres):
    facts = facts_by_charge(postgres)
    gbp, usd = facts["ch_good_gbp"], facts["ch_good_usd"]
    # Only the succeeded GBP refund counts: not the unknown, status-less or yen "refunds".
    assert (gbp["amount"], gbp["refunded_amount"], gbp["net_amount"], gbp["net_amount_gbp"]) == (
        Decimal("25.00"),
        Decimal("5.00"),
        Decimal("20.00"),
        Decimal("20.00"),
    )
    assert (gbp["refund_count"], gbp["uncounted_refund_count"]) == (4, 3)
    # Only the open chargeback withdraws funds, not the dispute in a status txstream does not know.
    assert (usd["amount"], usd["disputed_amount"], usd["net_amount"]) == (
        Decimal("42.00"),
        Decimal("10.00"),
        Decimal("32.00"),
    )
    assert (usd["dispute_count"], usd["uncounted_dispute_count"]) == (2, 1)
    assert abs(usd["net_amount_gbp"] - Decimal("32.00") / USD_RATE) < Decimal("1e-12")
    assert not any(gbp[flag] or usd[flag] for flag in ("currency_unknown", "charge_status_unknown", "fx_rate_missing"))


def test_a_charge_in_a_currency_missing_from_the_seed_keeps_only_its_minor_amount(pipeline, postgres):
    fact = facts_by_charge(postgres)["ch_unknown_currency"]
    assert fact["currency_unknown"] and fact["fx_rate_missing"]
    assert fact["amount_minor"] == 12345
    assert [fact[c] for c in ("amount", "captured_amount", "net_amount", "amount_gbp")] == [None] * 4


def test_a_charge_in_a_status_stripe_added_later_is_kept_and_flagged(pipeline, postgres):
    fact = facts_by_charge(postgres)["ch_unknown_status"]
    assert fact["charge_status"] == "requires_review" and fact["charge_status_unknown"]
    assert not fact["is_successful"] and fact["amount"] == Decimal("7.77")
    [outcome] = rows(postgres, "SELECT * FROM marts.dim_outcomes WHERE charge_status = 'requires_review'")
    assert outcome["outcome_key"] == fact["outcome_key"]


def test_refunds_and_disputes_without_their_charge_wait_outside_the_fact(pipeline, postgres):
    facts = facts_by_charge(postgres)
    assert "ch_never_arrived" not in facts and "ch_never_arrived_either" not in facts


def test_values_that_look_like_the_key_separator_or_null_get_keys_of_their_own(pipeline, postgres):
    facts = facts_by_charge(postgres)
    assert facts["ch_country_null_lookalike"]["payment_method_key"] != facts["ch_good_no_country"]["payment_method_key"]
    assert facts["ch_pipe_in_brand"]["payment_method_key"] != facts["ch_pipe_in_country"]["payment_method_key"]
    countries = {
        r["card_country"]
        for r in rows(postgres, "SELECT card_country FROM marts.dim_payment_methods WHERE card_brand = 'visa'")
    }
    assert {None, "~null~", "x|GB"} <= countries
    revenue = rows(
        postgres,
        "SELECT card_brand, card_country, gross_amount FROM marts.agg_daily_revenue "
        "WHERE revenue_date = %s AND card_brand LIKE 'visa%%' AND currency_code = 'usd'",
        (DAY,),
    )
    by_card = {(r["card_brand"], r["card_country"]): r["gross_amount"] for r in revenue}
    assert by_card[("visa|x", "GB")] == Decimal("30.00")
    assert by_card[("visa", "x|GB")] == Decimal("40.00")


# --- property: whatever the stream accepts, the staging models can type ----------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
CHARGE_PATHS = [
    ("amount_captured",),
    ("amount_refunded",),
    ("paid",),
    ("captured",),
    ("refunded",),
    ("disputed",),
    ("failure_code",),
    ("outcome",),
    ("outcome", "risk_score"),
    ("outcome", "type"),
    ("payment_method_details",),
    ("payment_method_details", "card"),
    ("payment_method_details", "card", "wallet"),
    ("payment_method_details", "card", "country"),
    ("billing_details",),
    ("billing_details", "address"),
]
DISPUTE_PATHS = [
    ("is_charge_refundable",),
    ("evidence_details",),
    ("evidence_details", "due_by"),
    ("payment_method_details",),
    ("reason",),
]
REFUND_PATHS = [("destination_details",), ("reason",)]
_ids = itertools.count()


def set_path(obj: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    obj[path[-1]] = value


@st.composite
def hostile_objects(draw):
    kind, paths = draw(
        st.sampled_from([("charge", CHARGE_PATHS), ("dispute", DISPUTE_PATHS), ("refund", REFUND_PATHS)])
    )
    obj = copy.deepcopy(stripe_fixture(kind))
    obj["id"] = f"{kind[:2]}_property_{next(_ids)}"
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True)):
        set_path(obj, path, draw(json_values))
    return obj


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(hostile_objects(), min_size=1, max_size=6))
def test_every_object_the_stream_accepts_can_be_read_through_the_staging_models(pipeline, postgres, objects):
    # Runs last: it adds rows to raw.transactions after the assertions above (the views exist from the build).
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    messages = [
        # json, not orjson: it writes integers beyond 64 bits, as hostile producers do.
        Message(
            value=json.dumps(o).encode(),
            key=o["id"].encode(),
            headers=message_headers(o["object"], "synthetic", now_ms),
        )
        for o in objects
    ]
    result = land_messages(postgres, messages)
    assert result.consumed == len(objects)
    ids = [o["id"] for o in objects]
    for view, key in (("stg_stripe__charges", "charge_id"), ("stg_stripe__refunds", "refund_id")):
        rows(postgres, f"SELECT * FROM staging.{view} WHERE {key} = any(%s)", (ids,))
    rows(postgres, "SELECT * FROM staging.stg_stripe__disputes WHERE dispute_id = any(%s)", (ids,))
