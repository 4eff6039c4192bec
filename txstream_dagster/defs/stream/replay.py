"""`replay_quarantine_job`: replay quarantined messages through the current transform (launched from the UI)."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from txstream_dagster.defs.stream.quarantine import replay_quarantine
from txstream_dagster.resources import PostgresResource


class ReplayConfig(dg.Config):
    reason: str | None = Field(
        default=None, description="Only messages quarantined for this reason, e.g. missing_field."
    )
    since: str | None = Field(
        default=None,
        description="Only messages quarantined at or after this time: ISO 8601, UTC unless it says (2026-12-01T09:30).",
    )
    dry_run: bool = Field(default=False, description="Do everything, then roll it back: what a replay would do.")


@dg.op(description="Put pending quarantined messages through the current transform; land those that now parse.")
def replay_quarantined_messages(
    context: dg.OpExecutionContext, config: ReplayConfig, postgres: PostgresResource
) -> dg.Output[None]:
    since = datetime.fromisoformat(config.since) if config.since else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    report = replay_quarantine(postgres, reason=config.reason, since=since, dry_run=config.dry_run)
    context.log.info(
        f"{'dry run: ' if report.dry_run else ''}replayed {report.replayed}, landed {report.landed}, "
        f"still failing {report.still_failing.total()}"
    )
    if report.landed and not report.dry_run:
        # Downstream models update from raw_transactions' materializations, whoever landed the rows.
        context.log_event(
            dg.AssetMaterialization(
                asset_key="raw_transactions",
                description="Landed by a quarantine replay",
                metadata={"inserted": report.inserted, "updated": report.updated},
            )
        )
    return dg.Output(
        None,
        metadata={
            "dry_run": report.dry_run,
            "replayed": report.replayed,
            "landed": report.landed,
            "inserted": report.inserted,
            "updated": report.updated,
            "duplicates": report.duplicates,
            "still_failing": report.still_failing.total(),
            "still_failing_by_reason": dg.MetadataValue.json(dict(report.still_failing.most_common())),
        },
    )


@dg.job(
    description="Replay quarantined messages (optionally of one reason, since a time) through the current "
    "transform, exactly once; still-failing ones stay quarantined with their new reason."
)
def replay_quarantine_job() -> None:
    replay_quarantined_messages()
