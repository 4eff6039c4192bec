"""Questions sensors ask Dagster about runs."""

import dagster as dg

UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def job_in_progress(context: dg.SensorEvaluationContext, job_name: str) -> bool:
    """Whether a run of `job_name` is queued or running."""
    return bool(context.instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=UNFINISHED), limit=1))
