"""`forex_rates`: 1 GBP in every currency a source publishes, one daily partition per calendar date."""

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

from txstream_dagster.defs.forex.resources import ForexApiResource
from txstream_dagster.defs.forex.sources import ForexSourceError
from txstream_dagster.defs.forex.store import FOREX_TABLE, PartitionWrite, save_published_rates
from txstream_dagster.resources import PostgresResource

# 2020 covers every charge we expect to backfill from Stripe while keeping the
# partition bar and a full backfill (~2,500 days, one single run) quick; the
# bundled ECB file reaches back to 1999-01-04 if an older start is ever needed.
FOREX_PARTITIONS_START = "2020-01-01"

# Partitions are UTC calendar dates, the date of a charge's `created_at` in UTC.
# end_offset=1: today's partition exists, so the evening schedule can fill it.
forex_partitions = dg.DailyPartitionsDefinition(start_date=FOREX_PARTITIONS_START, end_offset=1, timezone="UTC")

# ECB rates appear ~16:00 CET, sometimes later; a source may be briefly down.
# Waits of ~10, 20 and 40 minutes cover both without hammering anyone.
FOREX_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=600, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# Per-day detail in the metadata table is capped so a multi-year backfill stays readable.
DETAIL_ROWS = 62

FOREX_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("rate_date", "date", description="UTC calendar date the rate applies to"),
        dg.TableColumn("base", "text", description="always gbp"),
        dg.TableColumn("quote", "text", description="lower-case ISO 4217 code, as Stripe writes it"),
        dg.TableColumn("rate", "numeric", description="units of `quote` for 1 GBP"),
        dg.TableColumn("effective_date", "date", description="business day whose published rates apply"),
        dg.TableColumn("source", "text", description="currency_api | frankfurter | ecb_bundled"),
        dg.TableColumn("fetched_at", "timestamptz"),
    ]
)


def partition_days(window: dg.TimeWindow) -> list[date]:
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=offset) for offset in range((end - first).days)]


@dg.asset(
    group_name="forex",
    kinds={"python", "postgres"},
    partitions_def=forex_partitions,
    # One run per backfill range: also what `dagster asset materialize --partition-range` needs.
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=FOREX_RETRY_POLICY,
    metadata={"dagster/table_name": FOREX_TABLE, "dagster/column_schema": FOREX_COLUMNS},
)
def forex_rates(
    context: dg.AssetExecutionContext, forex: ForexApiResource, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Rates of 1 GBP in every currency the configured sources publish, for each calendar date.

    Weekends and TARGET holidays carry the last published business day forward
    (`effective_date` names it). A date no source can serve fails with the
    source's reason and writes nothing; a stored rate is never replaced by one
    from a lower-ranked source or an older publication.
    """
    writes: list[PartitionWrite] = []
    failures: list[tuple[date, ForexSourceError]] = []
    with forex.rates_source() as source, postgres.connect() as conn:
        for day in partition_days(context.partition_time_window):
            try:
                fetched = source.published_rates(day)
            except ForexSourceError as exc:
                context.log.error(f"{day}: {exc}")
                failures.append((day, exc))
                continue
            for fallback in fetched.fallbacks:
                context.log.warning(f"{day}: fell back from {fallback}")
            write = save_published_rates(conn, day, fetched.published)
            context.log.info(describe_write(write))
            writes.append(write)
    if failures:
        raise dg.Failure(
            description=describe_failures(failures, written=len(writes)),
            metadata={"failed_dates": [day.isoformat() for day, _ in failures], "dates_written": len(writes)},
            allow_retries=any(exc.retryable for _, exc in failures),
        )
    return dg.MaterializeResult(metadata=materialization_metadata(writes))


def describe_write(write: PartitionWrite) -> str:
    published, plan = write.published, write.plan
    text = (
        f"{write.rate_date}: {len(published.rates)} rates from {published.source} "
        f"published for {published.effective_date}; {len(plan.write)} written, {len(plan.unchanged)} unchanged"
    )
    if plan.kept:
        sources = ", ".join(f"{source} ×{n}" for source, n in Counter(r.source for r in plan.kept.values()).items())
        text += f", {len(plan.kept)} kept (already stored from {sources})"
    return text


def describe_failures(failures: Sequence[tuple[date, ForexSourceError]], written: int) -> str:
    lines = [f"No usable forex rates for {len(failures)} date(s); nothing was written for them."]
    lines += [f"- {day}: {exc}" for day, exc in failures[:20]]
    if len(failures) > 20:
        lines.append(f"- … and {len(failures) - 20} more (see the run's logs)")
    if written:
        lines.append(f"The other {written} date(s) of this run were written.")
    return "\n".join(lines)


def materialization_metadata(writes: Sequence[PartitionWrite]) -> dict[str, dg.MetadataValue | int | str]:
    sources = Counter(write.published.source for write in writes)
    effective_dates = sorted({write.published.effective_date for write in writes})
    quotes = sorted({quote for write in writes for quote in write.published.rates})
    metadata: dict[str, dg.MetadataValue | int | str] = {
        "source": ", ".join(f"{source} ({n} days)" for source, n in sources.most_common()),
        "effective_date": effective_dates[0].isoformat()
        if len(effective_dates) == 1
        else f"{effective_dates[0]} … {effective_dates[-1]}",
        "currencies": len(quotes),
        "currencies_published": ", ".join(quotes),
        "rows_written": sum(len(write.plan.write) for write in writes),
        "rows_unchanged": sum(len(write.plan.unchanged) for write in writes),
        "rows_kept_from_better_sources": sum(len(write.plan.kept) for write in writes),
    }
    if len(writes) > 1:
        rows = [
            f"| {w.rate_date} | {w.published.effective_date} | {w.published.source} | {w.currencies_stored} "
            f"| {len(w.plan.write)} | {len(w.plan.kept)} |"
            for w in writes[:DETAIL_ROWS]
        ]
        more = [f"\n… {len(writes) - DETAIL_ROWS} more dates"] if len(writes) > DETAIL_ROWS else []
        metadata["dates"] = dg.MetadataValue.md(
            "\n".join(
                [
                    "| date | effective date | source | currencies | written | kept |",
                    "| --- | --- | --- | --- | --- | --- |",
                    *rows,
                    *more,
                ]
            )
        )
    return metadata
