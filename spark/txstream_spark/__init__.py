"""The txstream streaming job: Kafka → typed rows → PostgreSQL, runnable by spark-submit anywhere."""

# Messages per micro-batch at most. Batches are staged by the tasks, not gathered on the
# driver, so this bounds a batch's duration, not memory; larger batches amortise each
# batch's fixed cost (bench/RESULTS.md: 50,000 sustained 0.64 of COPY, 20,000 0.55).
# Here, not in source.py, so that importing it does not import pyspark.
DEFAULT_MAX_OFFSETS_PER_TRIGGER = 50_000
