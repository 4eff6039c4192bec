"""The Kafka topic of Stripe objects, as an asset: materialising it publishes one batch.

No `from __future__ import annotations` here: Dagster reads the config and resource
types from the live annotations.
"""

import random

import dagster as dg
from pydantic import Field

from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.synthetic_ledger import synthetic_ledger
from txstream_dagster.defs.stripe_source.topic_feeds import FeedSummary, format_epoch, publish_synthetic, pull_stripe
from txstream_dagster.resources import KafkaResource, PostgresResource


class StripeBatchConfig(dg.Config):
    messages: int = Field(
        default=10_000,
        ge=1,
        description="Synthetic: messages to publish (with history_days: charges, plus their refunds and disputes).",
    )
    rate: float = Field(
        default=0.0, ge=0, description="Synthetic: messages per second; 0 = as fast as Kafka takes them."
    )
    seed: int | None = Field(
        default=None, description="Synthetic: generator seed (same seed, same objects); unset = random."
    )
    history_days: int = Field(
        default=0,
        ge=0,
        le=365,
        description="Synthetic: spread the charges over the last N days instead of streaming from now.",
    )


def summary_metadata(summary: FeedSummary) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "source": dg.MetadataValue.text(summary.source),
        "topic": dg.MetadataValue.text(summary.topic),
        "messages_published": dg.MetadataValue.int(summary.messages),
        "messages_by_object_type": dg.MetadataValue.json(summary.by_object_type),
        "events_per_second": dg.MetadataValue.float(round(summary.per_second, 1)),
        "seconds": dg.MetadataValue.float(round(summary.seconds, 3)),
        "resent_after_delivery_failure": dg.MetadataValue.int(summary.resent),
        "end_offsets": dg.MetadataValue.json({str(p): o for p, o in sorted(summary.end_offsets.items())}),
    }
    if summary.seed is not None:
        metadata["seed"] = dg.MetadataValue.int(summary.seed)
    if summary.cursor_created_gte is not None:
        metadata["stripe_cursor"] = dg.MetadataValue.timestamp(float(summary.cursor_created_gte))
        metadata["stripe_rate_limited"] = dg.MetadataValue.int(summary.rate_limited)
    if summary.balance_transactions_cursor is not None:
        metadata["stripe_balance_transactions_cursor"] = dg.MetadataValue.timestamp(
            float(summary.balance_transactions_cursor)
        )
    if summary.backfill_complete is not None:
        metadata["backfill_complete"] = dg.MetadataValue.bool(summary.backfill_complete)
        metadata["backfilled_by_object_type"] = dg.MetadataValue.json(summary.backfilled)
    return metadata


@dg.asset(
    key="stripe_events_topic",
    group_name="stripe_source",
    kinds={"kafka", "stripe"},
    description=(
        "Kafka topic of Stripe charges, refunds, disputes, payouts and balance transactions, one message per "
        "object version (key = object id, value = Stripe's JSON). Materialising publishes a batch: everything "
        "new in Stripe since the cursors when STRIPE_API_KEY is set (a first pull lists the history from "
        "TXSTREAM_STRIPE_BACKFILL_FROM on), synthetic objects otherwise."
    ),
)
def stripe_events_topic(
    context: dg.AssetExecutionContext,
    config: StripeBatchConfig,
    kafka: KafkaResource,
    postgres: PostgresResource,
    stripe: StripeResource,
) -> dg.MaterializeResult:
    if stripe.configured:
        context.log.info(f"Pulling new Stripe events ({stripe.mode} mode) into {kafka.topic}")
        if stripe.key_warning:
            context.log.warning(stripe.key_warning)
        summary = pull_stripe(
            kafka,
            stripe,
            postgres,
            on_backfill_window=lambda object_type, before: context.log.info(
                f"Backfill: every {object_type} created before {format_epoch(before)} is published"
            ),
        )
    else:
        seed = config.seed if config.seed is not None else random.randrange(2**31)
        context.log.info(f"STRIPE_API_KEY is not set: publishing synthetic objects (seed {seed}) to {kafka.topic}")
        with synthetic_ledger(postgres) as ledger:
            summary = publish_synthetic(
                kafka,
                seed=seed,
                count=config.messages,
                rate=config.rate or None,
                history_days=config.history_days,
                ledger=ledger,
            )
    return dg.MaterializeResult(metadata=summary_metadata(summary))
