"""`forex_rates`: 1 GBP in every currency a source publishes, one daily partition per calendar date."""

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date

import dagster as dg
import psycopg

from txstream_dagster.defs.forex.resources import ForexApiResource
from txstream_dagster.defs.forex.sources import ForexSourceError
from txstream_dagster.defs.forex.store import FOREX_TABLE, PartitionWrite, save_published_rates
from txstream_dagster.resources import PostgresResource
from txstream_dagster.resources.postgres import WarehouseUnavailable

# The ECB's first euro reference rates (Monday 4 January 1999): the offline
# source can serve every date from here on, so any history can be backfilled.
# An earlier start would only add partitions no source can fill.
FOREX_PARTITIONS_START = "1999-01-04"

# Partitions are UTC calendar dates, the date of a charge's `created_at` in UTC.
# end_offset=1: today's partition exists, so the evening schedule can fill it.
forex_partitions = dg.DailyPartitionsDefinition(start_date=FOREX_PARTITIONS_START, end_offset=1, timezone="UTC")

# ECB rates appear ~16:00 CET, sometimes later; a source may be briefly down.
# Waits of ~10, 20 and 40 minutes cover both without hammering anyone.
FOREX_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=600, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# Per-date detail (log lines, the metadata table) is kept for runs of up to two
# months; a multi-year backfill logs its progress instead and stays readable.
DETAIL_ROWS = 62
PROGRESS_EVERY = 250

FOREX_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("rate_date", "date", description="UTC calendar date the rate applies to"),
        dg.TableColumn("base", "text", description="always gbp"),
        dg.TableColumn("quote", "text", description="lower-case ISO 4217 code, as Stripe writes it"),
        dg.TableColumn("rate", "numeric", description="units of `quote` for 1 GBP"),
        dg.TableColumn(
            "effective_date", "date", description="day whose published rates apply (ECB: the last business day)"
        ),
        dg.TableColumn("source", "text", description="currency_api | frankfurter | ecb_bundled"),
        dg.TableColumn("fetched_at", "timestamptz"),
    ]
)


def partition_days(partition_keys: Sequence[str]) -> list[date]:
    return sorted(date.fromisoformat(key) for key in partition_keys)


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
    fallbacks: dict[str, None] = {}  # distinct reasons, in order: an offline backfill logs each once
    days = partition_days(context.partition_keys)
    with warehouse_connection(postgres) as conn, forex.rates_source() as source:
        for number, day in enumerate(days, start=1):
            try:
                fetched = source.published_rates(day)
            except ForexSourceError as exc:
                context.log.error(f"{day}: {exc}")
                failures.append((day, exc))
                continue
            for fallback in map(str, fetched.fallbacks):
                if fallback not in fallbacks:
                    context.log.warning(f"{day}: fell back from {fallback}")
                    fallbacks[fallback] = None
            write = save_published_rates(conn, day, fetched.published)
            writes.append(write)
            # Each log line is an event in Dagster's storage: a multi-year backfill logs progress only.
            if len(days) <= DETAIL_ROWS:
                context.log.info(describe_write(write))
            elif number % PROGRESS_EVERY == 0 or number == len(days):
                context.log.info(f"{number}/{len(days)} dates done, up to {day}")
    if failures:
        raise dg.Failure(
            description=describe_failures(failures, written=len(writes)),
            metadata={"failed_dates": [day.isoformat() for day, _ in failures], "dates_written": len(writes)},
            allow_retries=any(exc.retryable for _, exc in failures),
        )
    return dg.MaterializeResult(metadata=materialization_metadata(writes, list(fallbacks)))


@contextmanager
def warehouse_connection(postgres: PostgresResource) -> Iterator[psycopg.Connection]:
    """The retry policy is for rate sources; a warehouse that cannot be reached fails the run at
    once with its own explanation rather than retrying silently for an hour."""
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(postgres.connect())
        except WarehouseUnavailable as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        yield conn


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


def materialization_metadata(
    writes: Sequence[PartitionWrite], fallbacks: Sequence[str]
) -> dict[str, dg.MetadataValue | int | str | list[str]]:
    sources = Counter(write.published.source for write in writes)
    effective_dates = sorted({write.published.effective_date for write in writes})
    quotes = sorted({quote for write in writes for quote in write.published.rates})
    metadata: dict[str, dg.MetadataValue | int | str | list[str]] = {
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
    if fallbacks:
        metadata["fell_back_from"] = list(fallbacks[:10])
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
